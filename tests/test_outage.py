"""A database outage: fail fast with SERVICE_UNAVAILABLE, report not ready, recover untouched.

The service reaches PostgreSQL through a TCP proxy the test can cut and restore, as a network
or database outage would, without stopping the server other tests use.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import URL
from starlette.testclient import TestClient

from service.app import create_app
from service.settings import Settings
from tests.callbacks.test_rules import _schedule, _setup
from tests.conftest import PostgresqlDatabases
from tests.graphql_client import GraphQLClient

# Timings and loads of their own: run alone (see the `serial` marker).
pytestmark = pytest.mark.serial


class TcpProxy:
    """Forwards a local port to the database; `cut()` drops every connection and refuses new
    ones until `restore()`."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port: int = probe.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread.start()

    def _call(self, coroutine: object) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)  # type: ignore[arg-type]

    def restore(self) -> None:
        self._call(self._start())

    def cut(self) -> None:
        self._call(self._stop())

    def close(self) -> None:
        self.cut()
        self._call(self._cancel_relays())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _cancel_relays(self) -> None:
        relays = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in relays:
            task.cancel()
        await asyncio.gather(*relays, return_exceptions=True)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _relay(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.transport.abort()
            return
        self._writers.update({client_writer, server_writer})

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            writer.transport.abort()

        await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer))


@pytest.fixture
def proxied_api(
    postgresql_databases: PostgresqlDatabases,
) -> Iterator[tuple[GraphQLClient, TcpProxy]]:
    url = postgresql_databases.create(migrated=True)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    proxy.restore()
    proxied: URL = url.set(host="127.0.0.1", port=proxy.port)
    settings = Settings(open_without_keys=True, database_url=proxied, expiry_sweep_seconds=0)
    try:
        with TestClient(create_app(settings)) as client:
            yield GraphQLClient(client), proxy
    finally:
        proxy.close()
        postgresql_databases.drop(url)


def test_outage_fails_fast_reports_not_ready_and_recovers(
    proxied_api: tuple[GraphQLClient, TcpProxy],
) -> None:
    api, proxy = proxied_api
    _setup(api)
    assert "errors" not in _schedule(api, "CB1")
    assert api.client.get("/readyz").status_code == 200

    proxy.cut()
    started = time.monotonic()
    during = api.execute("{ callbacks { totalCount } }")
    assert time.monotonic() - started < 3
    assert during["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
    # A mutation during the outage is all or nothing: it fails and leaves no trace.
    failed = _schedule(api, "CB2", callId="CALL-2")
    assert failed["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
    assert api.client.get("/readyz").status_code == 503

    proxy.restore()
    deadline = time.monotonic() + 15
    while api.client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, "the service did not recover"
        time.sleep(0.2)
    after = api.data("{ callbacks { totalCount edges { node { callbackId callbackStatus } } } }")
    assert after["callbacks"]["totalCount"] == 1
    assert after["callbacks"]["edges"][0]["node"] == {
        "callbackId": "CB1",
        "callbackStatus": "ACTIVE",
    }
    assert "errors" not in _schedule(api, "CB2", callId="CALL-2")
