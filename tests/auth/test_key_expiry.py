"""Key expiry and rotation: an expired key is refused like a revoked one, on HTTP, on open
WebSockets and on signed links; the verdict cache never extends a key; rotation issues a
successor and ends the old key after a grace period; `apikey` shows and takes both."""

from __future__ import annotations

import contextlib
import datetime as dt
import time

import pytest
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.auth.api_keys import (
    ApiKeyError,
    ApiKeyRegistry,
    create_api_key,
    revoke_api_key,
    rotate_api_key,
)
from service.db.models.api_key import Role
from service.errors import UnauthenticatedError
from tests.auth.test_api_keys import FakeClock
from tests.auth.test_authorization import SUBSCRIPTION
from tests.auth.test_key_lifetime import (
    AGENTS,
    _code,
    _result,
    _schedule_one_callback,
    _settings,
    _start,
)
from tests.events.test_subscription import wait_for_subscribers
from tests.graphql_client import on_database, serve_graphql
from tests.test_cli import _pomreport

T0 = dt.datetime(2030, 1, 1, 9, 0, tzinfo=dt.UTC)


class FakeWallClock:
    """A UTC instant that moves only when a test says so."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now


def _registry(
    session_maker: async_sessionmaker[AsyncSession], wall: FakeWallClock, cache_seconds: float
) -> ApiKeyRegistry:
    return ApiKeyRegistry(
        session_maker,
        open_without_keys=False,
        cache_seconds=cache_seconds,
        clock=FakeClock(),  # the cache never runs out: only expiry can end the key
        wall_clock=wall,
    )


async def test_a_key_works_until_it_expires_even_while_its_verdict_is_cached(
    session_maker: async_sessionmaker[AsyncSession],
) -> None:
    wall = FakeWallClock()
    registry = _registry(session_maker, wall, cache_seconds=3600)
    row, key = await create_api_key(
        session_maker, Role.VIEWER, expires_at=T0 + dt.timedelta(days=90), now=T0
    )
    principal = await registry.authenticate(f"Bearer {key}")
    assert (principal.key_id, principal.expires_at) == (row.id, T0 + dt.timedelta(days=90))

    wall.now = T0 + dt.timedelta(days=90, seconds=-1)
    assert await registry.authenticate(f"Bearer {key}") == principal
    wall.now = T0 + dt.timedelta(days=90)
    with pytest.raises(UnauthenticatedError, match="expired at 2030-04-01 09:00:00 UTC"):
        await registry.authenticate(f"Bearer {key}")
    with pytest.raises(UnauthenticatedError, match="expired"):  # a signed link's key, too
        await registry.authenticate_key_id(row.id)


async def test_a_key_without_expiry_never_expires(
    session_maker: async_sessionmaker[AsyncSession],
) -> None:
    wall = FakeWallClock()
    registry = _registry(session_maker, wall, cache_seconds=0)
    _row, key = await create_api_key(session_maker, Role.ADMIN, now=T0)
    wall.now = T0 + dt.timedelta(days=365 * 50)
    assert (await registry.authenticate(f"Bearer {key}")).expires_at is None


async def test_rotation_issues_a_successor_and_ends_the_old_key_after_the_grace(
    session_maker: async_sessionmaker[AsyncSession],
) -> None:
    wall = FakeWallClock()
    registry = _registry(session_maker, wall, cache_seconds=0)
    old, old_key = await create_api_key(
        session_maker, Role.AGENT, agent_id="A7", name="desk", now=T0
    )
    new, new_key, rotated = await rotate_api_key(
        session_maker, old.id, grace=dt.timedelta(hours=24), now=T0
    )
    assert (new.role, new.agent_id, new.name, new.expires_at) == (Role.AGENT, "A7", "desk", None)
    assert new.id != old.id
    assert rotated.expires_at == T0 + dt.timedelta(hours=24)

    wall.now = T0 + dt.timedelta(hours=23)
    assert (await registry.authenticate(f"Bearer {old_key}")).key_id == old.id
    assert (await registry.authenticate(f"Bearer {new_key}")).key_id == new.id
    wall.now = T0 + dt.timedelta(hours=24)
    with pytest.raises(UnauthenticatedError, match="expired"):
        await registry.authenticate(f"Bearer {old_key}")
    assert (await registry.authenticate(f"Bearer {new_key}")).agent_id == "A7"

    # An expired key cannot be rotated; neither can a revoked one.
    with pytest.raises(ApiKeyError, match="expired"):
        await rotate_api_key(session_maker, old.id, grace=dt.timedelta(0), now=wall.now)
    await revoke_api_key(session_maker, new.id)
    with pytest.raises(ApiKeyError, match="revoked"):
        await rotate_api_key(session_maker, new.id, grace=dt.timedelta(0), now=wall.now)
    with pytest.raises(ApiKeyError, match="no API key 99"):
        await rotate_api_key(session_maker, 99, grace=dt.timedelta(0), now=wall.now)


async def test_rotation_never_lengthens_a_key_and_grace_zero_ends_it_at_once(
    session_maker: async_sessionmaker[AsyncSession],
) -> None:
    soon = T0 + dt.timedelta(hours=1)
    short, _key = await create_api_key(session_maker, Role.VIEWER, expires_at=soon, now=T0)
    successor, _key, rotated = await rotate_api_key(
        session_maker,
        short.id,
        grace=dt.timedelta(days=7),
        expires_at=T0 + dt.timedelta(days=90),
        now=T0,
    )
    assert rotated.expires_at == soon
    assert successor.expires_at == T0 + dt.timedelta(days=90)

    wall = FakeWallClock()
    registry = _registry(session_maker, wall, cache_seconds=0)
    other, other_key = await create_api_key(session_maker, Role.VIEWER, now=T0)
    await rotate_api_key(session_maker, other.id, grace=dt.timedelta(0), now=T0)
    with pytest.raises(UnauthenticatedError, match="expired"):
        await registry.authenticate(f"Bearer {other_key}")


def test_an_expired_key_is_refused_over_http_and_ends_an_open_subscription(
    database_url: URL,
) -> None:
    lifetime = 1.5  # seconds: long enough to subscribe, short enough to wait for
    expires_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=lifetime)
    _row, key = on_database(
        database_url,
        lambda sessions: create_api_key(sessions, Role.ADMIN, expires_at=expires_at),
    )
    protocol = "graphql-transport-ws"
    with (
        contextlib.contextmanager(serve_graphql)(_settings(database_url)) as api,
        api.client.websocket_connect("/graphql", subprotocols=[protocol]) as websocket,
    ):
        api.headers = {"Authorization": f"Bearer {key}"}
        assert api.post(AGENTS).status_code == 200
        websocket.send_json(
            {"type": "connection_init", "payload": {"Authorization": f"Bearer {key}"}}
        )
        assert websocket.receive_json()["type"] == "connection_ack"
        _start(websocket, protocol, "s1", SUBSCRIPTION)
        wait_for_subscribers(api, 1)

        time.sleep(max(0.0, (expires_at - dt.datetime.now(dt.UTC)).total_seconds()) + 0.05)
        refused = api.post(AGENTS)
        assert refused.status_code == 401
        error = refused.json()["errors"][0]
        assert error["extensions"]["code"] == "UNAUTHENTICATED"
        assert "expired" in error["message"]

        # The running subscription ends with UNAUTHENTICATED at the next change ...
        operator = on_database(
            database_url, lambda sessions: create_api_key(sessions, Role.OPERATOR)
        )[1]
        api.headers = {"Authorization": f"Bearer {operator}"}
        _schedule_one_callback(api)
        ended = _result(websocket)
        assert _code(ended) == "UNAUTHENTICATED"
        assert "expired" in ended["errors"][0]["message"]
        # ... and new operations on the socket are refused, saying why.
        _start(websocket, protocol, "q2", AGENTS)
        again = _result(websocket)
        assert _code(again) == "UNAUTHENTICATED"
        assert "expired" in again["errors"][0]["message"]


def test_apikey_create_with_expiry_rotate_and_list(database_url: URL) -> None:
    url = database_url.render_as_string(hide_password=False)
    created = _pomreport(
        "apikey", "create", "--role", "viewer", "--name", "wallboard", "--expires-in", "90d",
        database_url=url,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert ", expires " in created.stderr
    expected = (dt.datetime.now(dt.UTC) + dt.timedelta(days=90)).strftime("%Y-%m-%d")
    listing = _pomreport("apikey", "list", database_url=url)
    assert "EXPIRES" in listing.stdout
    assert expected in listing.stdout

    rotated = _pomreport("apikey", "rotate", "1", "--grace", "0", database_url=url)
    assert rotated.returncode == 0, rotated.stderr
    new_key = rotated.stdout.strip()
    assert new_key.startswith("pomr_")
    assert new_key != created.stdout.strip()
    assert "rotated API key 1 to API key 2" in rotated.stderr
    assert new_key not in rotated.stderr
    lines = _pomreport("apikey", "list", database_url=url).stdout.splitlines()
    assert "expired" in lines[1]  # key 1: its grace was none
    assert "wallboard" in lines[2]  # key 2: the same name, and no expiry
    assert "expired" not in lines[2]

    again = _pomreport("apikey", "rotate", "1", database_url=url)
    assert again.returncode == 1
    assert "expired" in again.stderr
    assert _pomreport("apikey", "revoke", "2", database_url=url).returncode == 0
    revoked = _pomreport("apikey", "rotate", "2", "--grace", "1h", database_url=url)
    assert revoked.returncode == 1
    assert "was revoked" in revoked.stderr
    assert revoked.stdout == ""


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        pytest.param(["create", "--role", "viewer", "--expires-in", "90"], "not a duration"),
        pytest.param(["create", "--role", "viewer", "--expires-in", "3w"], "not a duration"),
        pytest.param(["create", "--role", "viewer", "--expires-in=-1d"], "not a duration"),
        pytest.param(["create", "--role", "viewer", "--expires-in", "0d"], "at once"),
        pytest.param(["rotate", "1", "--grace", "1.5h"], "not a duration"),
        pytest.param(["rotate", "1", "--expires-in", "0"], "at once"),
    ],
)
def test_apikey_durations_that_do_not_parse_are_usage_errors(
    arguments: list[str], message: str
) -> None:
    result = _pomreport("apikey", *arguments)
    assert result.returncode == 2
    assert message in result.stderr
