"""Subscriptions against real servers over TCP with a real WebSocket client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import websockets
from sqlalchemy.engine import URL
from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from service.app import create_app
from service.settings import Settings
from tests.callbacks.test_rules import SCHEDULE, T0, _iso
from tests.serve_process import free_port

# Timings and loads of their own: run alone (see the `serial` marker).
pytestmark = pytest.mark.serial

SUBSCRIPTION = """subscription {
  callbackStatusChanged { previousStatus status callback { callbackId } }
}"""
SETUP = """mutation {
  upsertCampaign(input: {name: "Spring Renewals", campaignType: FINITE,
                         strategy: "Sales_Strategy", maxAttempts: 2}) { name }
  upsertAgent(input: {agentId: "A1", name: "Ava"}) { agentId }
  upsertContact(input: {contactId: "C1", firstName: "Noah", lastName: "Kim",
                        phone: "+1 555 0100", timeZone: "America/Chicago"}) { contactId }
}"""
START_JOB = 'mutation { startJob(input: {jobId: 7, campaignName: "Spring Renewals"}) { jobId } }'


def _schedule_variables(callback_id: str, call_id: str | None = None) -> dict[str, Any]:
    """A CAMPAIGN callback for A1 and C1 on its own call (or `call_id`), ending in 2099."""
    return {
        "input": {
            "callbackId": callback_id,
            "callbackType": "CAMPAIGN",
            "jobId": 7,
            "creatorAgentId": "A1",
            "contactId": "C1",
            "callId": call_id or callback_id,
            "creationTime": _iso(T0),
            "scheduledStartTime": _iso(T0),
            "scheduledEndTime": "2099-01-01T00:00:00Z",
        }
    }


async def _post(
    base_url: str, query: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        body: dict[str, Any] = (
            await client.post("/graphql", json={"query": query, "variables": variables})
        ).json()
    assert "errors" not in body, body
    return body


async def _prepare(base_url: str) -> None:
    await _post(base_url, SETUP)
    await _post(base_url, START_JOB)


class _Protocol:
    """The two WebSocket subprotocols' message names."""

    def __init__(self, name: str) -> None:
        self.name = name
        legacy = name == "graphql-ws"
        self.subscribe, self.next, self.complete = (
            ("start", "data", "stop") if legacy else ("subscribe", "next", "complete")
        )


@pytest.fixture(params=["graphql-transport-ws", "graphql-ws"])
def protocol(request: pytest.FixtureRequest) -> _Protocol:
    return _Protocol(request.param)


async def _subscribe(url: str, protocol: _Protocol) -> websockets.ClientConnection:
    connection = await websockets.connect(url, subprotocols=[websockets.Subprotocol(protocol.name)])
    await connection.send(json.dumps({"type": "connection_init", "payload": {}}))
    ack = json.loads(await asyncio.wait_for(connection.recv(), 5))
    assert ack["type"] == "connection_ack", ack
    await connection.send(
        json.dumps({"id": "1", "type": protocol.subscribe, "payload": {"query": SUBSCRIPTION}})
    )
    return connection


async def _next_change(
    connection: websockets.ClientConnection, protocol: _Protocol, within_seconds: float
) -> dict[str, Any]:
    while True:
        message = json.loads(await asyncio.wait_for(connection.recv(), within_seconds))
        if message["type"] == "ka":
            continue
        assert message["type"] == protocol.next, message
        change: dict[str, Any] = message["payload"]["data"]["callbackStatusChanged"]
        return change


# In-process server, so the test can look inside it --------------------------------------


class _LoopCapture:
    """ASGI wrapper that remembers the server's event loop."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.loop: asyncio.AbstractEventLoop | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.loop = asyncio.get_running_loop()
        await self.app(scope, receive, send)


@pytest.fixture
def served_app(database_url: URL) -> Iterator[tuple[_LoopCapture, str]]:
    app = _LoopCapture(
        create_app(
            Settings(open_without_keys=True, database_url=database_url, expiry_sweep_seconds=0)
        )
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    yield app, f"127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=20)


def _inside(app: _LoopCapture) -> tuple[int, int]:
    """The server's subscriber count and live task count, read on its own loop."""

    async def read() -> tuple[int, int]:
        return app.app.state.events.hub.subscriber_count, len(asyncio.all_tasks())

    assert app.loop is not None
    return asyncio.run_coroutine_threadsafe(read(), app.loop).result(timeout=10)


async def _settle(app: _LoopCapture, subscribers: int, tasks: int | None = None) -> tuple[int, int]:
    """Wait (10 s at most) until the server has that many subscribers (and tasks)."""
    deadline = time.monotonic() + 10
    while True:
        inside = await asyncio.to_thread(_inside, app)
        settled = inside[0] == subscribers and (tasks is None or inside[1] == tasks)
        if settled or time.monotonic() > deadline:
            return inside
        await asyncio.sleep(0.05)


async def test_real_websocket_client_receives_changes_and_cleans_up(
    served_app: tuple[_LoopCapture, str], protocol: _Protocol
) -> None:
    app, address = served_app
    base_url = f"http://{address}"
    await _prepare(base_url)
    baseline = await asyncio.to_thread(_inside, app)
    connection = await _subscribe(f"ws://{address}/graphql", protocol)
    await _settle(app, 1)
    await _post(base_url, SCHEDULE, _schedule_variables("CB1"))
    change = await _next_change(connection, protocol, 5)
    assert (change["callback"]["callbackId"], change["previousStatus"], change["status"]) == (
        "CB1",
        None,
        "ACTIVE",
    )
    await connection.send(json.dumps({"id": "1", "type": protocol.complete}))
    await connection.close()

    # 100 clients that subscribe and vanish without saying goodbye leave nothing behind.
    for _ in range(100):
        dropped = await _subscribe(f"ws://{address}/graphql", protocol)
        await dropped.close()
    assert await _settle(app, 0, baseline[1]) == (0, baseline[1])


# Separate `pomreport serve` processes -----------------------------------------------------


@dataclass(frozen=True)
class _Instance:
    """A `pomreport serve` process and the address it listens on."""

    address: str
    pid: int

    def worker_pids(self) -> list[int]:
        """The worker processes `serve --workers N` started (multiprocessing's spawned ones)."""
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        return [
            int(child)
            for child in children
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()
        ]


@contextlib.asynccontextmanager
async def _serve(url: URL, extra: dict[str, str], *arguments: str) -> AsyncIterator[_Instance]:
    port = free_port()
    environment = {
        **os.environ,
        **extra,
        "DATABASE_URL": url.render_as_string(hide_password=False),
        "POMREPORT_EXPIRY_SWEEP_SECONDS": "0",
    }
    process = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "service.cli", "serve", "--port", str(port), *arguments],
        env=environment,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        async with httpx.AsyncClient(base_url=base_url) as client:
            while True:
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert process.returncode is None, "serve exited"
                assert time.monotonic() < deadline, "serve did not become ready"
                await asyncio.sleep(0.1)
        yield _Instance(f"127.0.0.1:{port}", process.pid)
    finally:
        with contextlib.suppress(ProcessLookupError):  # a test may have killed it
            process.terminate()
        await asyncio.wait_for(process.wait(), 20)


async def test_change_made_on_one_instance_reaches_subscribers_of_another(
    postgresql_url: URL, transport_environment: dict[str, str]
) -> None:
    async with (
        _serve(postgresql_url, transport_environment) as first_instance,
        _serve(postgresql_url, transport_environment) as second_instance,
    ):
        first, second = first_instance.address, second_instance.address
        await _prepare(f"http://{second}")
        protocol = _Protocol("graphql-transport-ws")
        connection = await _subscribe(f"ws://{first}/graphql", protocol)
        # The subscription starts asynchronously: schedule until the first change arrives.
        for number in range(50):
            await _post(f"http://{second}", SCHEDULE, _schedule_variables(f"WARM{number}"))
            try:
                await _next_change(connection, protocol, 0.2)
                break
            except TimeoutError:
                continue
        else:
            pytest.fail("no change reached the other instance")
        with_pending = True
        while with_pending:  # drain changes from the warm-up
            try:
                await _next_change(connection, protocol, 0.3)
            except TimeoutError:
                with_pending = False
        started = time.monotonic()
        await _post(f"http://{second}", SCHEDULE, _schedule_variables("CB-MEASURED"))
        change = await _next_change(connection, protocol, 1.0)
        elapsed = time.monotonic() - started
        assert change["callback"]["callbackId"] == "CB-MEASURED"
        assert elapsed < 1.0
        await connection.close()


async def test_two_workers_serve_one_port_and_every_subscriber_gets_each_change_once(
    postgresql_url: URL, transport_environment: dict[str, str]
) -> None:
    async with _serve(postgresql_url, transport_environment, "--workers", "2") as instance:
        assert len(instance.worker_pids()) == 2
        base_url = f"http://{instance.address}"
        await _prepare(base_url)
        protocol = _Protocol("graphql-transport-ws")
        # Each WebSocket is accepted by whichever worker the kernel hands it to.
        connections = [
            await _subscribe(f"ws://{instance.address}/graphql", protocol) for _ in range(8)
        ]
        # Subscriptions start asynchronously: schedule until every subscriber has had a change.
        waiting = set(range(len(connections)))
        for number in range(50):
            await _post(base_url, SCHEDULE, _schedule_variables(f"WARM{number}"))
            for index in list(waiting):
                with contextlib.suppress(TimeoutError):
                    await _next_change(connections[index], protocol, 0.2)
                    waiting.discard(index)
            if not waiting:
                break
        assert not waiting, f"subscribers {sorted(waiting)} got no change"
        for connection in connections:  # drain the warm-up
            with contextlib.suppress(TimeoutError):
                while True:
                    await _next_change(connection, protocol, 0.3)
        await _post(base_url, SCHEDULE, _schedule_variables("CB-WORKERS"))
        for connection in connections:
            change = await _next_change(connection, protocol, 2.0)
            assert change["callback"]["callbackId"] == "CB-WORKERS"
            with pytest.raises(TimeoutError):  # once, not once per worker
                await _next_change(connection, protocol, 0.3)
            await connection.close()


def test_serve_refuses_several_workers_on_sqlite_without_redis(tmp_path: Path) -> None:
    environment = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    result = subprocess.run(
        [sys.executable, "-m", "service.cli", "serve", "--port", "1", "--workers", "2"],
        env={**environment, "DATABASE_URL": f"sqlite:///{tmp_path / 'pomreport.db'}"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "--workers 2 needs status-change events" in result.stderr
    assert "Traceback" not in result.stderr


# Subscriptions over HTTP, for clients that cannot open a WebSocket ------------------------


async def _first_event(response: httpx.Response, marker: str) -> str:
    """What the stream sent up to and including the first event that holds `marker`."""
    received = ""
    async with asyncio.timeout(10):
        async for chunk in response.aiter_text():
            received += chunk
            if marker in received:
                return received
    raise AssertionError(f"the stream ended without {marker!r}: {received!r}")


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        ("text/event-stream", "text/event-stream"),
        ("text/event-stream, application/json", "text/event-stream"),
        ("multipart/mixed;subscriptionSpec=1.0,application/json", "multipart/mixed"),
    ],
)
async def test_a_subscription_over_http_streams_changes_and_ends_with_the_client(
    served_app: tuple[_LoopCapture, str], accept: str, content_type: str
) -> None:
    app, address = served_app
    base_url = f"http://{address}"
    await _prepare(base_url)
    baseline = await asyncio.to_thread(_inside, app)
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=10) as client,
        client.stream(
            "POST", "/graphql", json={"query": SUBSCRIPTION}, headers={"accept": accept}
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(content_type)
        await _settle(app, 1)
        await _post(base_url, SCHEDULE, _schedule_variables("CB-HTTP"))
        received = await _first_event(response, "CB-HTTP")
    # SSE: "data: {...}" lines; multipart: a part whose body is the JSON line.
    (line,) = [
        line.removeprefix("data: ")
        for line in received.splitlines()
        if "CB-HTTP" in line and line.removeprefix("data: ").startswith("{")
    ]
    change = json.loads(line)
    payload = change.get("payload", change)  # multipart wraps each result in a payload
    assert payload["data"]["callbackStatusChanged"] == {
        "previousStatus": None,
        "status": "ACTIVE",
        "callback": {"callbackId": "CB-HTTP"},
    }
    # The client went away: its subscription and tasks are gone.
    assert await _settle(app, 0, baseline[1]) == (0, baseline[1])
