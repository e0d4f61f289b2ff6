"""Read replicas: where a request's reads go, and what each replica's checks find.

Reads go to a replica that answers and whose replay lags the primary by at most
POMREPORT_REPLICA_MAX_LAG_SECONDS, taking turns among those; to the primary when none does,
and for POMREPORT_READ_YOUR_WRITES_SECONDS after the caller's own mutation, so that it reads
what it just wrote.

Lag is measured from WAL positions, not from `now() - pg_last_xact_replay_timestamp()`, which
grows without bound while the primary is idle: each check notes the primary's position
(`pg_current_wal_lsn()`), then reads each replica's replay position. The replica holds
everything the primary had written when it was last seen at or before that replay position,
so its lag is at most the time since then: zero (to within a check's round trips) when it has
replayed all the primary wrote, and growing by a second a second while its replay stands still
behind writes. The primary's positions of the last minute or so are kept for this; a replica
behind all of them lags more than that, which is past any sensible bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import time
from collections import OrderedDict, deque
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import TextClause, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from service import metrics
from service.db.engines import create_engine, create_session_maker
from service.errors import is_database_unavailable, is_recovery_conflict
from service.settings import Settings

if TYPE_CHECKING:
    from starlette.requests import HTTPConnection

logger = logging.getLogger(__name__)

# Longest a replica may take to accept a connection before a request gives up on it and reads
# the primary instead (the primary's connections wait 10 s: there is nowhere else to go).
REPLICA_CONNECT_TIMEOUT_SECONDS = 2.0
# Longest one check of a replica (or of the primary's position) may take; past it the replica
# counts as down until a check succeeds.
CHECK_TIMEOUT_SECONDS = 2.0
# How far back the primary's positions are kept, at least: a replica behind all of them is
# reported with an unknown lag, and skipped.
MIN_HISTORY_SECONDS = 60.0

NOT_CHECKED = "not checked yet"

# Set on the response to a mutation when there are replicas, for the read-your-writes window:
# a client that keeps cookies reads the primary meanwhile on whichever process or instance
# its next requests reach (the window `Replicas` keeps is its process's alone). Its value
# means nothing; a client sending it of its own accord only reads the primary.
WROTE_COOKIE = "pomreport_wrote"

# Positions as byte offsets into the WAL (pg_lsn has no type of its own in the driver).
_PRIMARY_POSITION = text("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint")
_REPLICA_POSITION = text(
    "SELECT pg_is_in_recovery(), pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::bigint"
)


def replica_name(url: URL) -> str:
    """How a replica is shown (in /readyz, metrics and logs): its URL without a password."""
    return url.set(drivername="postgresql").render_as_string(hide_password=True)


@dataclass(frozen=True, slots=True)
class ReadTarget:
    """Where a request's reads go: the primary, or one replica."""

    engine: AsyncEngine
    session_maker: async_sessionmaker[AsyncSession]
    replica: Replica | None = None

    @property
    def is_replica(self) -> bool:
        """Whether the reads go to a replica."""
        return self.replica is not None


@dataclass(eq=False, slots=True)
class Replica:
    """One streaming replica: the engine requests read through, the one its checks use, and
    what the last check found (compared by identity: it changes as checks run)."""

    name: str
    engine: AsyncEngine
    check_engine: AsyncEngine
    # Its place in DATABASE_REPLICA_URL, from 1: how /readyz and /metrics name it, which anyone
    # may read, rather than by its URL (the log says which URL is which).
    number: int
    is_up: bool = False
    lag_seconds: float | None = None
    lag_bytes: int | None = None
    # Why the replica takes no reads; None while it does.
    reason: str | None = NOT_CHECKED
    # The monotonic time up to which the replica holds everything the primary committed, as
    # the last check found: reads check it is recent enough, whenever the next check comes.
    holds_until: float | None = None
    target: ReadTarget = field(init=False)

    def __post_init__(self) -> None:
        self.target = ReadTarget(self.engine, create_session_maker(self.engine), self)

    def set_down(self, reason: str) -> None:
        """Take no reads until a check finds the replica well again."""
        if self.is_up or self.reason == NOT_CHECKED:
            logger.warning("read replica %s skipped: %s", self.name, reason)
        self.is_up = False
        self.reason = reason
        self._show()

    def set_checked(
        self, lag_seconds: float, lag_bytes: int | None, max_lag: float, *, measured_at: float
    ) -> None:
        """Take reads if the lag a check measured (at monotonic time `measured_at`) is within
        `max_lag` seconds."""
        self.lag_seconds, self.lag_bytes = round(lag_seconds, 3), lag_bytes
        self.holds_until = measured_at - lag_seconds
        if lag_seconds > max_lag:
            self.set_down(f"lags {lag_seconds:.1f} s behind the primary, over {max_lag:g} s")
            return
        if not self.is_up:
            logger.info("read replica %s takes reads (lag %.3f s)", self.name, lag_seconds)
        self.is_up, self.reason = True, None
        self._show()

    def status(self) -> dict[str, object]:
        """The replica as /readyz shows it: its number, and why it takes no reads without the
        error's own words (host names, users), which the log has."""
        return {
            "replica": self.number,
            "up": self.is_up,
            "lagSeconds": self.lag_seconds,
            "lagBytes": self.lag_bytes,
            **({"reason": self.reason.split(":", 1)[0]} if self.reason else {}),
        }

    def _show(self) -> None:
        metrics.record_replica(
            str(self.number),
            is_up=self.is_up,
            lag_seconds=self.lag_seconds,
            lag_bytes=self.lag_bytes,
        )


class PrimaryPositions:
    """The primary's WAL positions as the checks saw them: each position with the last time
    it was seen, oldest first, for `keep_seconds` (and the newest always)."""

    def __init__(self, keep_seconds: float) -> None:
        self.keep_seconds = keep_seconds
        self._seen: deque[tuple[int, float]] = deque()

    @property
    def latest(self) -> int | None:
        """The newest position seen."""
        return self._seen[-1][0] if self._seen else None

    def note(self, position: int, at: float) -> None:
        """The primary was at `position` at monotonic time `at`."""
        if self._seen and self._seen[-1][0] >= position:
            self._seen[-1] = (self._seen[-1][0], at)
        else:
            self._seen.append((position, at))
        # The oldest entry goes once the next one is also past the horizon: a replay position
        # between them still dates from before it.
        while len(self._seen) > 1 and self._seen[1][1] < at - self.keep_seconds:
            self._seen.popleft()

    def lag_seconds(self, replayed: int, at: float) -> float | None:
        """How far behind a replica that had replayed up to `replayed` at `at` can be: the
        time since the primary was last seen at or before that position. None when it is
        behind every position kept (or none was seen)."""
        last_held: float | None = None
        for position, seen_at in self._seen:
            if position > replayed:
                break
            last_held = seen_at
        return None if last_held is None else max(0.0, at - last_held)


class Replicas:
    """The primary and the read replicas: where each request reads, and the checks that
    decide which replicas take reads."""

    def __init__(
        self,
        primary: ReadTarget,
        replicas: Sequence[Replica] = (),
        *,
        primary_check_engine: AsyncEngine | None = None,
        read_your_writes_seconds: float = 5.0,
        max_lag_seconds: float = 2.0,
        check_seconds: float = 1.0,
    ) -> None:
        self.primary = primary
        self.replicas = tuple(replicas)
        self.read_your_writes_seconds = read_your_writes_seconds
        self.max_lag_seconds = max_lag_seconds
        self.check_seconds = check_seconds
        self._primary_check_engine = primary_check_engine
        self._positions = PrimaryPositions(max(MIN_HISTORY_SECONDS, 4 * max_lag_seconds))
        # Writers in their read-your-writes window, by when it ends, soonest first.
        self._writers: OrderedDict[Hashable, float] = OrderedDict()
        self._turns = itertools.count()
        self._task: asyncio.Task[None] | None = None

    def target(self, writer: Hashable | None, *, wrote_recently: bool = False) -> ReadTarget:
        """Where a request of `writer` (who its mutations are noted for) reads now; the
        primary too when the request says its client wrote recently (`WROTE_COOKIE`)."""
        if not self.replicas or wrote_recently or self._is_writing(writer):
            return self.primary
        return self._replica_in_turn()

    def client_wrote(self, connection: HTTPConnection) -> bool:
        """Whether a request says its client wrote recently: it carries the cookie a
        mutation's response sets (`WROTE_COOKIE`). Not looked for without replicas."""
        return bool(self.replicas) and WROTE_COOKIE in connection.cookies

    def wrote_cookie(self) -> dict[str, Any] | None:
        """The arguments of `Response.set_cookie` for the response to a mutation; None
        without replicas."""
        if not self.replicas:
            return None
        return {
            "key": WROTE_COOKIE,
            "value": "1",
            "max_age": math.ceil(self.read_your_writes_seconds),
            "httponly": True,
            "samesite": "lax",
        }

    def count(self, target: ReadTarget) -> None:
        """An operation reads from `target` (counted in /metrics when there are replicas)."""
        if self.replicas:
            metrics.READS_ROUTED.labels("replica" if target.is_replica else "primary").inc()

    def note_write(self, writer: Hashable | None) -> None:
        """`writer` has just committed (or tried to): its reads go to the primary for the
        read-your-writes window."""
        if not self.replicas or writer is None:
            return
        self._writers.pop(writer, None)
        self._writers[writer] = time.monotonic() + self.read_your_writes_seconds

    def failed(self, target: ReadTarget, error: BaseException) -> bool:
        """Whether a read that failed on `target` with `error` should run again on the
        primary: the replica cannot be reached (it is skipped until a check finds it well), or
        the replica's replay cancelled the read (a recovery conflict)."""
        replica = target.replica
        if replica is None:
            return False
        if is_database_unavailable(error):
            replica.set_down(f"a read could not reach it: {_first_line(error)}")
            return True
        return is_recovery_conflict(error)

    def status(self) -> list[dict[str, object]]:
        """Each replica as /readyz shows it."""
        return [replica.status() for replica in self.replicas]

    async def start(self) -> None:
        """Check the replicas once (so reads use them from the first request), then every
        `check_seconds` in the background."""
        if not self.replicas:
            return
        for replica in self.replicas:
            logger.info("read replica %d: %s", replica.number, replica.name)
        await self.check()
        self._task = asyncio.create_task(self._check_forever(), name="replica-checks")

    async def stop(self) -> None:
        """Stop the checks and close the replicas' connections."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for replica in self.replicas:
            await replica.engine.dispose()
            await replica.check_engine.dispose()
        if self._primary_check_engine is not None:
            await self._primary_check_engine.dispose()

    async def check(self) -> None:
        """Note the primary's WAL position, then measure every replica against it."""
        if self._primary_check_engine is not None:
            try:
                # The primary reached this position after `asked`, so a replica that has
                # replayed it holds everything committed before `asked` (a later time would
                # understate its lag by the round trip).
                asked = time.monotonic()
                async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                    position = await _scalar(self._primary_check_engine, _PRIMARY_POSITION)
                self._positions.note(int(str(position)), asked)
            except Exception as error:
                # Lag is then measured against what was seen before, so it grows.
                logger.warning("replica checks cannot reach the primary: %s", _first_line(error))
        await asyncio.gather(*(self._check(replica) for replica in self.replicas))

    async def _check(self, replica: Replica) -> None:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                async with replica.check_engine.connect() as connection:
                    row = (await connection.execute(_REPLICA_POSITION)).one()
        except Exception as error:
            replica.lag_seconds = replica.lag_bytes = None
            replica.set_down(f"unreachable: {_first_line(error)}")
            return
        is_standby, replayed = row
        if not is_standby:
            # Promoted, or not a replica at all: what it holds may not be the primary's.
            replica.lag_seconds = replica.lag_bytes = None
            replica.set_down("not a standby (pg_is_in_recovery() is false)")
            return
        if replayed is None:
            replica.set_down("has replayed no WAL yet")
            return
        measured_at = time.monotonic()
        lag = self._positions.lag_seconds(replayed, measured_at)
        latest = self._positions.latest
        lag_bytes = None if latest is None else max(0, latest - replayed)
        if lag is None:
            replica.lag_seconds, replica.lag_bytes = None, lag_bytes
            replica.set_down("behind every primary position the checks have seen")
            return
        if not replica.is_up and lag <= self.max_lag_seconds:
            # Back from down, perhaps restarted: connections pooled before would fail their
            # next request (which the primary would then answer, and the replica be skipped
            # again until the next check), so reads start over on new ones, closed before the
            # replica takes reads again.
            await replica.engine.dispose()
        replica.set_checked(lag, lag_bytes, self.max_lag_seconds, measured_at=measured_at)

    async def _check_forever(self) -> None:
        while True:
            await asyncio.sleep(self.check_seconds)
            try:
                await self.check()
            except Exception:  # a check must never end the checks
                logger.exception("checking the read replicas failed")

    def _is_writing(self, writer: Hashable | None) -> bool:
        now = time.monotonic()
        while self._writers:
            oldest, ends = next(iter(self._writers.items()))
            if ends > now:
                break
            del self._writers[oldest]
        return writer is not None and writer in self._writers

    def _replica_in_turn(self) -> ReadTarget:
        # A replica is as recent as its last check found it: one whose checks have stalled
        # (timeouts, the primary out of reach) stops taking reads once that is older than the
        # lag bound plus a check, which the read-your-writes window covers.
        oldest = time.monotonic() - self.max_lag_seconds - self.check_seconds
        up = [
            replica
            for replica in self.replicas
            if replica.is_up and replica.holds_until is not None and replica.holds_until >= oldest
        ]
        if not up:
            return self.primary
        return up[next(self._turns) % len(up)].target


def create_replicas(
    settings: Settings, primary_engine: AsyncEngine, primary: async_sessionmaker[AsyncSession]
) -> Replicas:
    """The replicas of `settings` (none unless DATABASE_REPLICA_URL is set), with their
    engines; `Replicas.stop` closes them."""
    target = ReadTarget(primary_engine, primary)
    if not settings.database_replica_urls:
        return Replicas(target)
    replicas = [
        Replica(
            replica_name(url),
            create_engine(
                url,
                statement_timeout_ms=settings.statement_timeout_ms,
                pool_size=settings.pool_size,
                pool_timeout_seconds=settings.pool_timeout_seconds,
                connect_timeout_seconds=REPLICA_CONNECT_TIMEOUT_SECONDS,
            ),
            _check_engine(url),
            number,
        )
        for number, url in enumerate(settings.database_replica_urls, start=1)
    ]
    return Replicas(
        target,
        replicas,
        primary_check_engine=_check_engine(settings.database_url),
        read_your_writes_seconds=settings.read_your_writes_seconds,
        max_lag_seconds=settings.replica_max_lag_seconds,
        check_seconds=settings.replica_check_seconds,
    )


def _check_engine(url: URL) -> AsyncEngine:
    """One connection of the checks' own, so that a saturated pool cannot make a replica
    look down (or the primary's position stale); in autocommit: each check is one SELECT."""
    engine = create_engine(
        url,
        pool_size=1,
        pool_timeout_seconds=CHECK_TIMEOUT_SECONDS,
        application_name="pomreport replica checks",
        connect_timeout_seconds=CHECK_TIMEOUT_SECONDS,
    )
    return engine.execution_options(isolation_level="AUTOCOMMIT")


async def _scalar(engine: AsyncEngine, statement: TextClause) -> object:
    async with engine.connect() as connection:
        return (await connection.execute(statement)).scalar_one()


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
