"""Faults that must lose nothing, on PostgreSQL: a server killed with SIGKILL in the middle of
mutations while subscribers listen on another instance (events through NOTIFY or Redis), and
Redis killed and restarted, and PostgreSQL stopped and started, under the same load."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import random
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
import websockets
from sqlalchemy import select
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.db.engines import create_engine, create_session_maker
from service.db.models.callback import Callback, CallbackStatus
from service.db.models.status_change import StatusChangeEntry
from tests.callbacks.test_rules import SCHEDULE
from tests.conftest import PostgresqlDatabases, SqliteDatabases
from tests.events.test_servers import SETUP, START_JOB, _schedule_variables, _serve
from tests.own_postgresql import own_cluster
from tests.serve_process import free_port

# Timings and loads of their own: run alone (see the `serial` marker).
pytestmark = pytest.mark.serial

WATCH = """subscription($after: ID) {
  callbackStatusChanged(after: $after) { changeId status callback { callbackId } }
}"""
COMPLETE = """mutation($id: String!) {
  recordCallbackAttempt(input: {callbackId: $id, agentId: "A1", completed: true}) {
    callbackStatus
  }
}"""
COUNT = "{ callbacks { totalCount } }"
CLIENTS = 32


class _Watcher:
    """A subscriber that records every changeId it receives; it can drop its connection and
    resume after the last one."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.received: list[int] = []
        self._task: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()
        self.arrived = asyncio.Event()

    def start(self) -> None:
        after = str(self.received[-1]) if self.received else None
        self.subscribed.clear()
        self._task = asyncio.create_task(self._listen(after))

    async def stop(self) -> None:
        """Close the connection (if its server has not already)."""
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
            await self._task

    async def resume_on(self, address: str) -> None:
        """Subscribe again, on `address`, after the last change received."""
        await self.stop()
        self.address = address
        self.start()
        await asyncio.wait_for(self.subscribed.wait(), 10)

    async def heard(self, count: int) -> None:
        """Wait until `count` changes have arrived."""
        async with asyncio.timeout(30):
            while len(self.received) < count:
                self.arrived.clear()
                await self.arrived.wait()

    async def _listen(self, after: str | None) -> None:
        async with websockets.connect(
            f"ws://{self.address}/graphql",
            subprotocols=[websockets.Subprotocol("graphql-transport-ws")],
        ) as connection:
            await connection.send(json.dumps({"type": "connection_init", "payload": {}}))
            assert json.loads(await connection.recv())["type"] == "connection_ack"
            payload = {"query": WATCH, "variables": {"after": after}}
            await connection.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
            self.subscribed.set()
            async for message in connection:
                event = json.loads(message)
                assert event["type"] == "next", event
                change = event["payload"]["data"]["callbackStatusChanged"]
                self.received.append(int(change["changeId"]))
                self.arrived.set()


@dataclass
class _Load:
    """What the mutating clients saw: the schedules acknowledged (answered without error,
    so committed) and every error code."""

    stop: asyncio.Event = field(default_factory=asyncio.Event)
    acknowledged: set[str] = field(default_factory=set)
    codes: collections.Counter[str] = field(default_factory=collections.Counter)
    # Each round of clients names its callbacks apart from the rounds before.
    round: int = 0


async def _mutate_until(base_url: str, load: _Load, client_number: int) -> None:
    """Schedule (often on a call another client uses too: overwrites) and complete callbacks
    until told to stop. A request the server could not answer (it was killed) is not retried:
    the next one goes on."""
    rng = random.Random(client_number)
    scheduled: list[str] = []
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as client:
        for number in range(10_000):
            if load.stop.is_set():
                break
            callback_id = None
            if scheduled and rng.random() < 0.3:
                body = {"query": COMPLETE, "variables": {"id": rng.choice(scheduled)}}
            else:
                callback_id = f"CB-{load.round}-{client_number}-{number}"
                variables = _schedule_variables(callback_id, f"CALL-{rng.randrange(40)}")
                body = {"query": SCHEDULE, "variables": variables}
            try:
                response = await client.post("/graphql", json=body)
            except httpx.TransportError:
                load.codes["no answer"] += 1
                await asyncio.sleep(0.05)
                continue
            codes = {e["extensions"]["code"] for e in response.json().get("errors", [])}
            # CONFLICT: completing a callback another client's schedule overwrote.
            assert codes <= {"CONFLICT", "SERVICE_UNAVAILABLE"}, response.text
            load.codes.update(codes or {"OK"})
            if callback_id is not None and not codes:
                load.acknowledged.add(callback_id)
                scheduled.append(callback_id)


async def _log_and_callbacks(
    url: URL,
) -> tuple[list[StatusChangeEntry], list[Callback]]:
    engine = create_engine(url)
    session_maker: async_sessionmaker[AsyncSession] = create_session_maker(engine)
    try:
        async with session_maker() as session:
            log = list(await session.scalars(select(StatusChangeEntry).order_by("id")))
            callbacks = list(await session.scalars(select(Callback)))
        return log, callbacks
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def _mutating(base_url: str, load: _Load | None = None) -> AsyncIterator[_Load]:
    """`CLIENTS` clients mutating through `base_url` while the block runs."""
    load = load or _Load()
    load.stop.clear()
    load.round += 1
    clients = [asyncio.create_task(_mutate_until(base_url, load, n)) for n in range(CLIENTS)]
    try:
        yield load
    finally:
        load.stop.set()
        await asyncio.gather(*clients)
    assert load.codes["OK"] > 0, load.codes


def _assert_nothing_lost(
    log: list[StatusChangeEntry], callbacks: list[Callback], load: _Load
) -> None:
    """Every acknowledged schedule is there, and the SPEC's invariants hold, from the log and
    the rows: each change follows the one before it (so no terminal callback ever changed)
    and ends where the callback is now; at most one ACTIVE callback per call."""
    current = {callback.callback_id: callback.status for callback in callbacks}
    assert load.acknowledged <= current.keys()
    last: dict[str, CallbackStatus] = {}
    for entry in log:
        assert entry.previous_status == last.get(entry.callback_id), entry.callback_id
        assert entry.previous_status in (None, CallbackStatus.ACTIVE), entry.callback_id
        last[entry.callback_id] = entry.status
    assert last == current
    active = [
        (c.creator_agent_id, c.contact_id, c.call_id)
        for c in callbacks
        if c.status is CallbackStatus.ACTIVE
    ]
    assert len(active) == len(set(active))


async def _setup_through(address: str) -> None:
    async with httpx.AsyncClient(base_url=f"http://{address}") as client:
        for query in (SETUP, START_JOB):
            assert "errors" not in (await client.post("/graphql", json={"query": query})).json()


async def _watching(address: str) -> _Watcher:
    watcher = _Watcher(address)
    watcher.start()
    await asyncio.wait_for(watcher.subscribed.wait(), 10)
    return watcher


async def _each_heard_the_log_once(url: URL, load: _Load, *watchers: _Watcher) -> None:
    """Every change the log holds reached each watcher exactly once, and nothing was lost."""
    log, callbacks = await _log_and_callbacks(url)
    logged = [entry.id for entry in log]
    for watcher in watchers:
        await watcher.heard(len(logged))
    await asyncio.sleep(1)  # a duplicate would arrive meanwhile
    for watcher in watchers:
        assert sorted(watcher.received) == logged
        await watcher.stop()
    _assert_nothing_lost(log, callbacks, load)


async def test_sigkill_mid_mutations_loses_no_committed_change(
    postgresql_url: URL, transport_environment: dict[str, str]
) -> None:
    """One instance is killed while clients mutate through it; subscribers listen on another
    (one throughout, one away meanwhile) and on the killed one, resuming on its restart."""
    environment = {**transport_environment, "POMREPORT_RELAY_SECONDS": "0.5"}
    async with _serve(postgresql_url, environment) as listening:
        await _setup_through(listening.address)
        live = await _watching(listening.address)  # connected throughout
        away = await _watching(listening.address)  # away while the server is killed
        load = _Load()
        async with _serve(postgresql_url, environment) as doomed:
            on_doomed = await _watching(doomed.address)
            await asyncio.sleep(0.5)  # the subscriptions have started on the servers
            async with _mutating(f"http://{doomed.address}", load):
                await live.heard(30)
                await away.stop()
                await live.heard(60)  # with mutations in flight, some of them committing
                os.kill(doomed.pid, signal.SIGKILL)
        async with _serve(postgresql_url, environment) as restarted:
            # Resumed after the last change it had from the killed server.
            await on_doomed.resume_on(restarted.address)
            async with _mutating(f"http://{restarted.address}", load):
                await live.heard(90)
            await away.resume_on(listening.address)
            # The live one hears every change through the transports (and the relay, for
            # what the killed server committed but never published); the resumed ones from
            # the log, then live.
            await _each_heard_the_log_once(postgresql_url, load, live, away, on_doomed)


async def test_sigkill_of_the_only_instance_on_sqlite_loses_no_committed_change(
    sqlite_databases: SqliteDatabases,
) -> None:
    """SQLite's variant: one instance (events in-process), killed while clients mutate; its
    subscriber resumes on the restarted instance with every change it missed, once."""
    url = await asyncio.to_thread(sqlite_databases.create, migrated=True)
    load = _Load()
    async with _serve(url, {}) as doomed:
        await _setup_through(doomed.address)
        watcher = await _watching(doomed.address)
        await asyncio.sleep(0.5)
        async with _mutating(f"http://{doomed.address}", load):
            await watcher.heard(30)
            os.kill(doomed.pid, signal.SIGKILL)
    async with _serve(url, {}) as restarted:
        await watcher.resume_on(restarted.address)
        async with _mutating(f"http://{restarted.address}", load):
            await watcher.heard(len(watcher.received) + 30)
        await _each_heard_the_log_once(url, load, watcher)


@contextlib.asynccontextmanager
async def _redis_server(port: int) -> AsyncIterator[asyncio.subprocess.Process]:
    """A Redis of the test's own, on `port`, keeping nothing on disk."""
    process = await asyncio.create_subprocess_exec(
        *("redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""),
        *("--appendonly", "no"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with asyncio.timeout(10):
            while True:
                try:
                    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
                except OSError:
                    await asyncio.sleep(0.05)
                    continue
                writer.close()
                break
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


async def test_redis_killed_and_restarted_mid_mutations_loses_no_change(
    postgresql_url: URL,
) -> None:
    """A Redis of the test's own is killed while clients mutate through one instance and a
    subscriber listens on another, then started again on its port and kept up."""
    redis_port = free_port()
    environment = {
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "POMREPORT_RELAY_SECONDS": "0.5",
    }
    async with (
        _serve(postgresql_url, environment) as listening,
        _serve(postgresql_url, environment) as mutated,
    ):
        async with _redis_server(redis_port) as redis:
            await _setup_through(mutated.address)
            live = await _watching(listening.address)
            await asyncio.sleep(0.5)
            load = _Load()
            async with _mutating(f"http://{mutated.address}", load):
                await live.heard(30)
                redis.kill()
                await redis.wait()
                # Mutations go on committing; their publication fails; the log keeps them.
                await asyncio.sleep(2)
        async with _redis_server(redis_port):
            async with _mutating(f"http://{mutated.address}", load):
                await live.heard(len(live.received) + 30)
            # The relay publishes what the outage kept back; the listener, reconnected,
            # catches up on what Redis dropped.
            await _each_heard_the_log_once(postgresql_url, load, live)


async def test_postgresql_restarted_mid_mutations_is_unavailable_then_recovers_losing_nothing(
    postgresql_databases: PostgresqlDatabases,
) -> None:
    """On a cluster of the test's own (`postgresql_databases` only ties the test to the
    PostgreSQL runs): stopped while 32 clients mutate, then started again."""
    with own_cluster() as cluster:
        environment = {**os.environ, "DATABASE_URL": cluster.url.render_as_string(False)}
        migrate = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "service.cli", "migrate"),
            env=environment,
            stdout=asyncio.subprocess.DEVNULL,
        )
        assert await asyncio.wait_for(migrate.wait(), 60) == 0
        async with (
            _serve(cluster.url, {"POMREPORT_RELAY_SECONDS": "0.5"}) as instance,
            httpx.AsyncClient(base_url=f"http://{instance.address}", timeout=10) as client,
        ):
            for query in (SETUP, START_JOB):
                assert "errors" not in (await client.post("/graphql", json={"query": query})).json()
            live = _Watcher(instance.address)
            live.start()
            await asyncio.wait_for(live.subscribed.wait(), 10)
            await asyncio.sleep(0.5)
            async with _mutating(f"http://{instance.address}") as load:
                await live.heard(30)
                await asyncio.to_thread(cluster.stop)
                started = time.monotonic()
                during = await client.post("/graphql", json={"query": COUNT})
                assert time.monotonic() - started < 3
                assert during.status_code == 503
                assert during.json()["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
                assert (await client.get("/readyz")).status_code == 503
                await asyncio.sleep(1)
                await asyncio.to_thread(cluster.start)
                # Recovery without restarting the service.
                async with asyncio.timeout(20):
                    while True:
                        if (await client.get("/readyz")).status_code == 200:
                            break
                        await asyncio.sleep(0.2)
                await live.heard(len(live.received) + 30)
            log, callbacks = await _log_and_callbacks(cluster.url)
            _assert_nothing_lost(log, callbacks, load)
            assert load.codes["SERVICE_UNAVAILABLE"] + load.codes["no answer"] > 0, load.codes
            logged = [entry.id for entry in log]
            # The LISTEN connection dropped with the server; the hub caught up from the log.
            await live.heard(len(logged))
            await asyncio.sleep(1)
            await live.stop()
        assert sorted(live.received) == logged
