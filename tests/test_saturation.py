"""A saturated pool and clients that leave: a bounded wait answered 503 with Retry-After, and
the work of a disconnected client cancelled, statements included.

PostgreSQL holds requests still with a table lock taken by the test, so a request's statement
waits in the database exactly as long as the test wants; the service runs in-process behind
a real uvicorn socket.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator

import asyncpg
import httpx
import pytest
import uvicorn
from sqlalchemy.engine import URL

from service.app import create_app
from service.settings import Settings
from tests.conftest import PostgresqlDatabases

# Timings and loads of their own: run alone (see the `serial` marker).
pytestmark = pytest.mark.serial

COUNT = {"query": "{ callbacks { totalCount } }"}


@pytest.fixture
def database(postgresql_databases: PostgresqlDatabases) -> Iterator[URL]:
    url = postgresql_databases.create(migrated=True)
    yield url
    postgresql_databases.drop(url)


def _serve(settings: Settings) -> tuple[uvicorn.Server, threading.Thread, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{port}"


@pytest.fixture(params=[True, False], ids=["compiled", "general"])
async def service(request: pytest.FixtureRequest, database: URL) -> AsyncIterator[str]:
    """The service with one pooled connection and a half-second wait for it."""
    settings = Settings(
        open_without_keys=True,
        database_url=database,
        expiry_sweep_seconds=0,
        pool_size=1,
        pool_timeout_seconds=0.5,
        statement_timeout_ms=60_000,
        compiled_execution=request.param,
    )
    server, thread, base_url = await asyncio.to_thread(_serve, settings)
    try:
        yield base_url
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 20)


@pytest.fixture
async def locker(database: URL) -> AsyncIterator[asyncpg.Connection]:
    """A connection of the test's own, to lock the callback table with."""
    dsn = database.set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(dsn)
    try:
        yield connection
    finally:
        await connection.close()


async def _lock_callbacks(locker: asyncpg.Connection) -> asyncpg.transaction.Transaction:
    transaction = locker.transaction()
    await transaction.start()
    await locker.execute("LOCK TABLE callback IN ACCESS EXCLUSIVE MODE")
    return transaction


async def _statements_waiting_for_the_lock(locker: asyncpg.Connection, expected: int) -> None:
    """Wait (5 s at most) until that many of the service's statements wait for the lock."""
    deadline = time.monotonic() + 5
    while True:
        waiting = await locker.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        if waiting == expected:
            return
        assert time.monotonic() < deadline, f"{waiting} statements wait, not {expected}"
        await asyncio.sleep(0.05)


async def test_a_saturated_pool_answers_503_with_retry_after_within_its_timeout(
    service: str, locker: asyncpg.Connection
) -> None:
    async with httpx.AsyncClient(base_url=service, timeout=30) as client:
        assert (await client.post("/graphql", json=COUNT)).status_code == 200
        transaction = await _lock_callbacks(locker)
        try:
            holding = asyncio.ensure_future(client.post("/graphql", json=COUNT))
            await _statements_waiting_for_the_lock(locker, 1)
            started = time.monotonic()
            refused = await client.post("/graphql", json=COUNT)
            waited = time.monotonic() - started
        finally:
            await transaction.rollback()
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        error = refused.json()["errors"][0]
        assert error["extensions"] == {"code": "SERVICE_UNAVAILABLE"}
        assert "QueuePool" not in error["message"]
        # One wait of the pool's 0.5 s, not two: the compiled path answers the busy pool
        # itself instead of leaving the request to the general path to wait again.
        assert 0.4 < waited < 0.95
        # The request that held the connection is answered in full once the lock goes.
        held = await holding
        assert held.status_code == 200
        assert held.json() == {"data": {"callbacks": {"totalCount": 0}}}


async def test_a_client_that_leaves_has_its_statements_cancelled(
    service: str, locker: asyncpg.Connection
) -> None:
    async with httpx.AsyncClient(base_url=service, timeout=30) as client:
        assert (await client.post("/graphql", json=COUNT)).status_code == 200
        transaction = await _lock_callbacks(locker)
        try:
            with pytest.raises(httpx.ReadTimeout):  # the client gives up and closes its socket
                await client.post("/graphql", json=COUNT, timeout=1)
            # The statement stops waiting while the lock is still held: it was cancelled.
            await _statements_waiting_for_the_lock(locker, 0)
        finally:
            await transaction.rollback()
        # Its connection went back to the pool: the next request gets it at once.
        answered = await client.post("/graphql", json=COUNT)
        assert answered.status_code == 200
        assert answered.json() == {"data": {"callbacks": {"totalCount": 0}}}


async def test_a_report_on_a_pool_of_one_runs_its_total_after_its_rows(service: str) -> None:
    # The total would run beside the rows on a second connection; with none free it waits for
    # nothing and runs after them on the first.
    report = (
        "{ callbacksScheduledDetails(timePeriod: {preset: ALL}) {"
        " totalRecords rows(first: 5) { edges { node { callbackId } } } } }"
    )
    async with httpx.AsyncClient(base_url=service, timeout=30) as client:
        answered = await client.post("/graphql", json={"query": report})
    assert answered.status_code == 200
    assert answered.json() == {
        "data": {"callbacksScheduledDetails": {"totalRecords": 0, "rows": {"edges": []}}}
    }
