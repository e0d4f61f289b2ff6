"""API keys: issuing, listing and revoking them, and turning a request's key into a principal."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import secrets
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from sqlalchemy import bindparam, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service import metrics
from service.auth.row_scope import UNRESTRICTED, RowScope
from service.clock import utc_now
from service.db.models.api_key import ApiKey, Role
from service.errors import UnauthenticatedError, is_database_unavailable

logger = logging.getLogger(__name__)

ResultT = TypeVar("ResultT")

# The in-flight name of the "does any key exist?" check (digests are hex, so never this).
_KEYS_EXIST_CHECK = "keys-exist"

# Recognisable in logs and secret scanners; the rest is 256 random bits.
KEY_MARKER = "pomr_"
# How much of a key `apikey list` shows, to tell keys apart without revealing them.
SHOWN_PREFIX_LENGTH = 12


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts for: a key's role, and for agent keys the agent."""

    role: Role
    agent_id: str | None
    key_id: int | None
    name: str
    # When the key stops working (None: never); carried so a cached verdict cannot outlive it.
    expires_at: dt.datetime | None = None

    @property
    def row_scope(self) -> RowScope:
        """The callback rows this principal may see."""
        return RowScope(self.agent_id) if self.role is Role.AGENT else UNRESTRICTED

    def has_expired(self, now: dt.datetime) -> bool:
        """Whether the key has stopped working by `now`."""
        return self.expires_at is not None and self.expires_at <= now

    @classmethod
    def of(cls, row: ApiKey) -> Principal:
        """The principal a key's row makes."""
        return cls(row.role, row.agent_id, row.id, row.name, row.expires_at)


# Everything is allowed while a loopback server has no keys (development only).
OPEN_DEVELOPMENT_PRINCIPAL = Principal(Role.ADMIN, None, None, "open development mode")


class ApiKeyError(Exception):
    """A key management request the database cannot honour; the message says why."""


def hash_key(key: str) -> str:
    """The stored form of a key: its SHA-256, in hex."""
    return hashlib.sha256(key.encode()).hexdigest()


def bearer_key(authorization: str | None) -> str | None:
    """The key in an `Authorization: Bearer <key>` value; None when there is no value."""
    if authorization is None or not authorization.strip():
        return None
    scheme, _, key = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise UnauthenticatedError("send the API key as 'Authorization: Bearer <key>'")
    return key.strip()


async def create_api_key(
    session_maker: async_sessionmaker[AsyncSession],
    role: Role,
    *,
    agent_id: str | None = None,
    name: str = "",
    expires_at: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> tuple[ApiKey, str]:
    """Issue a key; return its row and the key itself, which is never stored or shown again.

    The key works until `expires_at` (None: until revoked).
    """
    row, key = _new_key(role, agent_id=agent_id, name=name, expires_at=expires_at, now=now)
    async with session_maker() as session, session.begin():
        session.add(row)
    return row, key


def _new_key(
    role: Role,
    *,
    agent_id: str | None,
    name: str,
    expires_at: dt.datetime | None,
    now: dt.datetime | None,
) -> tuple[ApiKey, str]:
    """A new key's row (not yet added to a session) and the key itself."""
    if (role is Role.AGENT) != (agent_id is not None):
        raise ApiKeyError(
            "an agent key needs --agent-id"
            if role is Role.AGENT
            else "only agent keys name an agent"
        )
    key = KEY_MARKER + secrets.token_urlsafe(32)
    row = ApiKey(
        name=name,
        role=role,
        agent_id=agent_id,
        key_prefix=key[:SHOWN_PREFIX_LENGTH],
        key_hash=hash_key(key),
        created_at=now or utc_now(),
        expires_at=expires_at,
    )
    return row, key


async def list_api_keys(session_maker: async_sessionmaker[AsyncSession]) -> list[ApiKey]:
    """Every key ever issued, revoked ones included, oldest first."""
    async with session_maker() as session:
        return list(await session.scalars(select(ApiKey).order_by(ApiKey.id)))


async def _key_for_update(session: AsyncSession, key_id: int) -> ApiKey:
    """The key's row, locked until the transaction ends; a key never issued is an error."""
    row = await session.get(ApiKey, key_id, with_for_update=True)
    if row is None:
        raise ApiKeyError(f"there is no API key {key_id}; `pomreport apikey list` shows them")
    return row


async def revoke_api_key(
    session_maker: async_sessionmaker[AsyncSession], key_id: int, *, now: dt.datetime | None = None
) -> ApiKey:
    """Revoke a key for good; a key already revoked or never issued is an error."""
    async with session_maker() as session, session.begin():
        row = await _key_for_update(session, key_id)
        if row.revoked_at is not None:
            raise ApiKeyError(f"API key {key_id} was already revoked at {row.revoked_at}")
        row.revoked_at = now or utc_now()
    return row


async def rotate_api_key(
    session_maker: async_sessionmaker[AsyncSession],
    key_id: int,
    *,
    grace: dt.timedelta,
    expires_at: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> tuple[ApiKey, str, ApiKey]:
    """Replace a key: issue one with the same role, agent and name, and let the old one work
    for `grace` more (never longer than it would have). Returns the new row, the new key and
    the old row. A key revoked, expired or never issued is an error."""
    now = now or utc_now()
    async with session_maker() as session, session.begin():
        old = await _key_for_update(session, key_id)
        if old.revoked_at is not None:
            raise ApiKeyError(f"API key {key_id} was revoked at {old.revoked_at}; issue a new one")
        if old.expires_at is not None and old.expires_at <= now:
            raise ApiKeyError(f"API key {key_id} expired at {old.expires_at}; issue a new one")
        row, key = _new_key(
            old.role, agent_id=old.agent_id, name=old.name, expires_at=expires_at, now=now
        )
        session.add(row)
        # Rotation shortens the old key's life, never lengthens it.
        ends = now + grace
        old.expires_at = ends if old.expires_at is None else min(old.expires_at, ends)
    return row, key, old


async def mark_keys_used(
    session_maker: async_sessionmaker[AsyncSession],
    used_at: Mapping[int, dt.datetime],
    *,
    at_most_every: dt.timedelta,
) -> None:
    """Note when each key was last used, in one statement for all of them; a key whose
    recorded use is less than `at_most_every` older (written meanwhile by another process) is
    left as it is, so the column never moves back and is written at most that often."""
    if not used_at:
        return
    statement = (
        update(ApiKey)
        .where(
            ApiKey.id == bindparam("key_id"),
            or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at <= bindparam("written_before")),
        )
        .values(last_used_at=bindparam("used_at"))
    )
    rows = [
        {"key_id": key_id, "used_at": at, "written_before": at - at_most_every}
        for key_id, at in used_at.items()
    ]
    async with session_maker() as session, session.begin():
        await (await session.connection()).execute(statement, rows)


class ApiKeyRegistry:
    """Authenticates requests against the `api_key` table, with a short cache.

    A key's verdict is trusted for `cache_seconds`, so a busy client costs no SQL; a
    revocation therefore takes effect within that time on every instance (WebSockets check
    again on each operation and each delivered change). A key nobody has tried is looked up
    at once, so a key issued a moment ago works at once; a rejected key stays rejected in the
    cache (it cannot become valid: keys are random). Concurrent lookups of one key share one
    statement, so a thousand subscribers re-checking after the cache time cost one.

    With `open_without_keys`, a request without a key runs as admin while the table holds
    no key at all (revoked ones count: revoking every key does not open a server). Creating
    the first key ends that mode within `cache_seconds`, without a restart. Unless
    `open_to_proxied`, open mode serves only direct clients: a request a proxy forwarded
    (it carries `Forwarded` or `X-Forwarded-For`) needs a key even then, so a loopback
    server behind a reverse proxy is not open to the world.

    `on_use` hears the id of every key a request is let through with, cached or not, so
    that its last use can be noted (`service.auth.key_usage`).
    """

    # Most key verdicts remembered; the oldest go first (bounds memory under a flood).
    MAX_REMEMBERED_KEYS = 10_000

    def __init__(
        self,
        session_maker: async_sessionmaker[AsyncSession],
        *,
        open_without_keys: bool,
        cache_seconds: float,
        open_to_proxied: bool = False,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], dt.datetime] = utc_now,
        on_use: Callable[[int], None] | None = None,
    ) -> None:
        self._session_maker = session_maker
        self._on_use = on_use  # told the id of every key a request is let through with
        self._open_without_keys = open_without_keys
        self._open_to_proxied = open_to_proxied
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._wall_clock = wall_clock  # for key expiry, which is an instant, not an interval
        self._verdicts: dict[str, tuple[Principal | None, float]] = {}
        # Lookups under way, by key digest (or KEYS_EXIST_CHECK), shared by their waiters.
        self._in_flight: dict[str, asyncio.Future[Any]] = {}
        self._keys_exist: bool | None = None  # None: not known yet
        self._keys_checked_at = float("-inf")

    async def start(self) -> None:
        """Learn whether keys exist; announce open development mode loudly if it applies."""
        if not self._open_without_keys:
            return
        try:
            await self._check_keys_exist()
        except Exception as error:
            if not is_database_unavailable(error):
                raise
            logger.warning("cannot tell yet whether API keys exist: %s", error)
            return
        if self.is_open:
            logger.warning(
                "OPEN DEVELOPMENT MODE: no API keys exist, so every request runs as admin "
                "without a key. Create one with `pomreport apikey create --role admin` to "
                "require keys."
            )

    @property
    def is_open(self) -> bool:
        """Whether requests without a key are served (as last checked)."""
        return self._open_without_keys and self._keys_exist is False

    async def authenticate(self, authorization: str | None, *, proxied: bool = False) -> Principal:
        """The principal for an Authorization header value (or WebSocket payload value).

        Raises UnauthenticatedError for a missing, malformed, unknown, revoked or expired key.
        """
        key = bearer_key(authorization)
        if key is None:
            return await self._open_principal(proxied=proxied)
        digest = hash_key(key)
        verdict = self._verdicts.get(digest)
        if verdict is None or self._clock() - verdict[1] >= self._cache_seconds:
            principal = await self._shared(digest, lambda: self._look_up(digest))
            self._remember(digest, principal)
        else:
            principal = verdict[0]
        if principal is None:
            raise UnauthenticatedError("the API key is not valid (unknown or revoked)")
        # Checked on every call, cached or not: the cache may shorten a key's life (a
        # revocation takes up to `cache_seconds`) but never lengthen it past its expiry.
        self._refuse_expired(principal)
        self._used(principal)
        return principal

    def _refuse_expired(self, principal: Principal) -> None:
        if principal.has_expired(self._wall_clock()):
            raise UnauthenticatedError(
                f"the API key expired at {principal.expires_at:%Y-%m-%d %H:%M:%S} UTC"
            )

    def _used(self, principal: Principal) -> None:
        if self._on_use is not None and principal.key_id is not None:
            self._on_use(principal.key_id)

    async def authenticate_key_id(self, key_id: int | None, *, proxied: bool = False) -> Principal:
        """The principal of the key a signed link names by id (None: a link signed in open
        development mode, which works only while that mode lasts).

        Looked up at once, never from the cache: a link outlives the request that made it,
        and must stop working the moment its key is revoked. Raises UnauthenticatedError
        when the key is unknown or revoked.
        """
        if key_id is None:
            return await self._open_principal(proxied=proxied)
        async with self._session_maker() as session:
            row = await session.scalar(
                select(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
            )
        metrics.KEY_LOOKUPS.labels("unknown" if row is None else "found").inc()
        if row is None:
            raise UnauthenticatedError(
                "the API key this link was signed for has been revoked; get a new link"
            )
        principal = Principal.of(row)
        self._refuse_expired(principal)
        self._used(principal)
        return principal

    async def _open_principal(self, *, proxied: bool) -> Principal:
        if self._open_without_keys and self._keys_exist is not True:
            if self._clock() - self._keys_checked_at >= self._cache_seconds:
                await self._shared(_KEYS_EXIST_CHECK, self._check_keys_exist)
            if self._keys_exist is False:
                if proxied and not self._open_to_proxied:
                    raise UnauthenticatedError(
                        "open development mode serves direct loopback clients only, and this "
                        "request came through a proxy: create an API key and send it"
                    )
                return OPEN_DEVELOPMENT_PRINCIPAL
        raise UnauthenticatedError(
            "this request needs an API key: send 'Authorization: Bearer <key>'"
        )

    def _remember(self, digest: str, principal: Principal | None) -> None:
        self._verdicts.pop(digest, None)
        self._verdicts[digest] = (principal, self._clock())
        while len(self._verdicts) > self.MAX_REMEMBERED_KEYS:
            del self._verdicts[next(iter(self._verdicts))]

    async def _shared(
        self, name: str, start: Callable[[], Coroutine[Any, Any, ResultT]]
    ) -> ResultT:
        """Run `start()` once for all concurrent callers asking under `name`."""
        running = self._in_flight.get(name)
        if running is None:
            running = self._in_flight[name] = asyncio.ensure_future(start())

            def forget(done: asyncio.Future[Any]) -> None:
                del self._in_flight[name]
                if not done.cancelled():
                    done.exception()  # seen, even when every waiter has gone

            running.add_done_callback(forget)
        # Shielded: one waiter going away must not cancel the others' lookup.
        return cast(ResultT, await asyncio.shield(running))

    async def _look_up(self, digest: str) -> Principal | None:
        async with self._session_maker() as session:
            row = await session.scalar(
                select(ApiKey).where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None))
            )
        metrics.KEY_LOOKUPS.labels("unknown" if row is None else "found").inc()
        if row is None:
            return None
        self._end_open_mode()
        return Principal.of(row)

    async def _check_keys_exist(self) -> None:
        async with self._session_maker() as session:
            found = bool(await session.scalar(select(exists().where(ApiKey.id.is_not(None)))))
        self._keys_checked_at = self._clock()
        if found:
            self._end_open_mode()
        else:
            self._keys_exist = False

    def _end_open_mode(self) -> None:
        if self.is_open:
            logger.warning("API keys exist now: open development mode has ended")
        self._keys_exist = True
