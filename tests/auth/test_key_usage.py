"""When each key was last used: written in the background at most once a minute per key, never
on a request's own path, the column only moving forward; shown by `apikey list`."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.engine import URL, Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.testclient import TestClient

from service.app import create_app
from service.auth.api_keys import ApiKeyRegistry, create_api_key
from service.auth.key_usage import KeyUsage
from service.cli import main
from service.clock import utc_now
from service.db.models.api_key import ApiKey, Role
from service.settings import Settings
from tests.graphql_client import on_database

T0 = dt.datetime(2030, 1, 1, 9, 0, tzinfo=dt.UTC)
QUERY = {"query": "{ campaigns { totalCount } }"}


class FakeWallClock:
    """A UTC instant that moves only when a test says so."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now


@contextlib.contextmanager
def _updates_of_api_key() -> Iterator[list[str]]:
    """Every UPDATE of api_key any engine runs meanwhile (the app writes on its write engine)."""
    updates: list[str] = []

    def note(_connection: Any, _cursor: Any, statement: str, *_arguments: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE API_KEY"):
            updates.append(statement)

    event.listen(Engine, "before_cursor_execute", note)
    try:
        yield updates
    finally:
        event.remove(Engine, "before_cursor_execute", note)


def _last_used(url: URL, key_id: int) -> dt.datetime | None:
    async def read(sessions: async_sessionmaker[AsyncSession]) -> dt.datetime | None:
        async with sessions() as session:
            return await session.scalar(select(ApiKey.last_used_at).where(ApiKey.id == key_id))

    return on_database(url, read)


def _issue(url: URL, role: Role = Role.VIEWER) -> tuple[int, str]:
    async def issue(sessions: async_sessionmaker[AsyncSession]) -> tuple[int, str]:
        row, key = await create_api_key(sessions, role)
        return row.id, key

    return on_database(url, issue)


def test_a_burst_of_requests_writes_the_last_use_once(database_url: URL) -> None:
    key_id, key = _issue(database_url)
    unused_id, _unused = _issue(database_url)
    headers = {"Authorization": f"Bearer {key}"}
    settings = Settings(database_url=database_url, expiry_sweep_seconds=0)
    before = utc_now().replace(microsecond=0)
    with _updates_of_api_key() as updates:
        with TestClient(create_app(settings)) as client:
            for _ in range(20):
                assert client.post("/graphql", json=QUERY, headers=headers).status_code == 200
            # Nothing written on the requests' path: the use is only noted.
            assert updates == []
            # The background round (once a minute), run now.
            app: Any = client.app
            assert client.portal is not None  # the app's event loop, while the client is open
            client.portal.call(app.state.key_usage.write)
            assert len(updates) == 1
            written = _last_used(database_url, key_id)
            assert written is not None
            assert before <= written <= utc_now()
            # More requests within the minute write nothing, now or when the service stops.
            for _ in range(20):
                assert client.post("/graphql", json=QUERY, headers=headers).status_code == 200
            client.portal.call(app.state.key_usage.write)
        assert len(updates) == 1
    assert _last_used(database_url, key_id) == written
    assert _last_used(database_url, unused_id) is None


def test_the_last_use_is_written_when_the_service_stops_and_apikey_list_shows_it(
    database_url: URL, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    key_id, key = _issue(database_url)
    _issue(database_url)  # never used
    settings = Settings(database_url=database_url, expiry_sweep_seconds=0)
    with _updates_of_api_key() as updates:
        with TestClient(create_app(settings)) as client:
            for _ in range(3):
                response = client.post(
                    "/graphql", json=QUERY, headers={"Authorization": f"Bearer {key}"}
                )
                assert response.status_code == 200
            assert _last_used(database_url, key_id) is None
        assert len(updates) == 1
    assert _last_used(database_url, key_id) is not None

    monkeypatch.setenv("DATABASE_URL", database_url.render_as_string(hide_password=False))
    assert main(["apikey", "list"]) == 0
    header, row, never = capsys.readouterr().out.splitlines()
    assert "LAST USED" in header
    last_used = _last_used(database_url, key_id)
    assert last_used is not None
    assert last_used.strftime("%Y-%m-%d %H:%M UTC") in row
    assert "never" in never


async def test_a_key_is_written_at_most_once_a_minute(
    engine: AsyncEngine, session_maker: async_sessionmaker[AsyncSession]
) -> None:
    row, key = await create_api_key(session_maker, Role.AGENT, agent_id="A1")
    wall = FakeWallClock()
    usage = KeyUsage(session_maker, clock=wall)
    registry = ApiKeyRegistry(
        session_maker, open_without_keys=False, cache_seconds=3600, on_use=usage.note
    )
    updates: list[str] = []
    event.listen(
        engine.sync_engine,
        "before_cursor_execute",
        lambda _c, _k, statement, *_a: (
            updates.append(statement) if statement.startswith("UPDATE") else None
        ),
    )

    async def last_used() -> dt.datetime | None:
        async with session_maker() as session:
            return await session.scalar(select(ApiKey.last_used_at).where(ApiKey.id == row.id))

    await registry.authenticate(f"Bearer {key}")
    await usage.write()
    assert (len(updates), await last_used()) == (1, T0)
    for seconds in (1, 30, 59):
        wall.now = T0 + dt.timedelta(seconds=seconds)
        await registry.authenticate(f"Bearer {key}")
        await usage.write()
    assert (len(updates), await last_used()) == (1, T0)
    wall.now = T0 + dt.timedelta(seconds=61)
    await registry.authenticate(f"Bearer {key}")
    wall.now = T0 + dt.timedelta(seconds=75)
    await registry.authenticate(f"Bearer {key}")
    await usage.write()
    # The latest use before the round.
    assert (len(updates), await last_used()) == (2, T0 + dt.timedelta(seconds=75))


async def test_another_process_never_writes_within_the_minute_or_back_in_time(
    session_maker: async_sessionmaker[AsyncSession],
) -> None:
    row, _key = await create_api_key(session_maker, Role.VIEWER)
    first_clock, second_clock = FakeWallClock(), FakeWallClock()
    first = KeyUsage(session_maker, clock=first_clock)
    second = KeyUsage(session_maker, clock=second_clock)

    async def last_used() -> dt.datetime | None:
        async with session_maker() as session:
            return await session.scalar(select(ApiKey.last_used_at).where(ApiKey.id == row.id))

    first_clock.now = T0 + dt.timedelta(seconds=30)
    first.note(row.id)
    await first.write()
    second.note(row.id)  # at T0: older than what the first process wrote
    await second.write()
    assert await last_used() == T0 + dt.timedelta(seconds=30)
    second_clock.now = T0 + dt.timedelta(seconds=80)  # 50 s after the first one's write
    second.note(row.id)
    await second.write()
    assert await last_used() == T0 + dt.timedelta(seconds=30)
    # Each process waits its own minute after a round that named the key, written or not.
    second_clock.now = T0 + dt.timedelta(seconds=139)
    second.note(row.id)
    await second.write()
    assert await last_used() == T0 + dt.timedelta(seconds=30)
    second_clock.now = T0 + dt.timedelta(seconds=141)
    second.note(row.id)
    await second.write()
    assert await last_used() == T0 + dt.timedelta(seconds=141)
