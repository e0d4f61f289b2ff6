"""Read replicas against a real streaming replica: a cluster of the test's own, a
`pg_basebackup` of it running as a hot standby on another port, and `pomreport serve` with
DATABASE_REPLICA_URL pointing there. Both clusters log every statement, so a test can tell
which one a request's SQL ran on; a statement's parameters are logged with it, so each test
puts a marker of its own in a filter."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from service.auth.api_keys import create_api_key
from service.db.engines import create_engine, create_session_maker
from service.db.migrations import upgrade_to_head
from service.db.models.api_key import Role
from tests.conftest import PostgresqlDatabases
from tests.events.test_servers import _serve
from tests.own_postgresql import OwnCluster, own_cluster, own_replica

# Timings of their own (a lag bound, a replica stopped for seconds): run alone.
pytestmark = pytest.mark.serial

# Tight enough that a lagging replica is skipped within a couple of seconds.
CHECK_SECONDS = 0.2
MAX_LAG_SECONDS = 2.0
READ_YOUR_WRITES_SECONDS = 3.0

LOGGED = {"log_statement": "all"}
REPORT = """query($agent: String) {
  callbacksScheduledDetails(timePeriod: {lastDays: 30}, filters: {agentId: $agent}) {
    totalRecords
    rows(first: 5) { edges { node { callbackId } } }
  }
}"""
SUMMARY = """query($agent: String) {
  callbacksScheduledSummary(filters: {agentId: $agent}, groupBy: [CALLBACK_STATUS]) {
    totalRecords
  }
}"""
CALLBACKS = """query($agent: String!) {
  callbacks(filter: {creatorAgentId: {eq: $agent}}) { totalCount }
}"""
UPSERT_AGENT = """mutation($agentId: String!, $name: String!) {
  upsertAgent(input: {agentId: $agentId, name: $name}) { agentId name }
}"""
AGENT = "query($agentId: String!) { agent(agentId: $agentId) { name } }"
CSV_PATH = "/reports/callbacks-scheduled-details.csv"


@dataclass(frozen=True)
class Clusters:
    primary: OwnCluster
    replica: OwnCluster
    # Two admin keys: the writer's mutations must not send the reader to the primary.
    writer_key: str
    reader_key: str


@pytest.fixture(scope="module")
def clusters(postgresql_databases: PostgresqlDatabases) -> Iterator[Clusters]:
    """A migrated primary with two API keys, and its streaming replica (made once per module;
    `postgresql_databases` only ties the tests to the PostgreSQL runs)."""
    with own_cluster(LOGGED) as primary:
        upgrade_to_head(primary.url)
        writer_key, reader_key = asyncio.run(_create_keys(primary))
        with own_replica(primary, LOGGED) as replica:
            yield Clusters(primary, replica, writer_key, reader_key)


async def _create_keys(primary: OwnCluster) -> list[str]:
    engine = create_engine(primary.url)
    try:
        session_maker = create_session_maker(engine)
        return [
            (await create_api_key(session_maker, Role.ADMIN, name=name))[1]
            for name in ("replica test writer", "replica test reader")
        ]
    finally:
        await engine.dispose()


@dataclass
class Service:
    writer: httpx.AsyncClient
    reader: httpx.AsyncClient
    anyone: httpx.AsyncClient

    async def data(self, client: httpx.AsyncClient, query: str, **variables: Any) -> Any:
        """Run an operation that must succeed; its data."""
        response = await client.post("/graphql", json={"query": query, "variables": variables})
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body
        return body["data"]

    async def readiness(self) -> dict[str, Any]:
        """The replica's entry in /readyz's body (the service itself must be ready)."""
        response = await self.anyone.get("/readyz")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "ready"
        [replica] = body["replicas"]
        assert isinstance(replica, dict)
        return replica

    async def replica_metrics(self) -> dict[str, float]:
        """The replica gauges of /metrics, by name."""
        text = (await self.anyone.get("/metrics")).text
        return {
            name: float(value)
            for name, value in re.findall(r"^(pomreport_replica_\w+)\{[^}]*\} (\S+)$", text, re.M)
        }

    async def reads_routed(self) -> dict[str, float]:
        """pomreport_reads_routed by target."""
        text = (await self.anyone.get("/metrics")).text
        found = re.findall(r'^pomreport_reads_routed_total\{target="(\w+)"\} (\S+)$', text, re.M)
        return {target: float(value) for target, value in found}

    async def wait_until_replica(self, *, up: bool, within: float = 10) -> dict[str, Any]:
        """/readyz's entry once it shows the replica up (or down)."""
        deadline = time.monotonic() + within
        while True:
            replica = await self.readiness()
            if replica["up"] is up:
                return replica
            assert time.monotonic() < deadline, f"replica never {'up' if up else 'down'}: {replica}"
            await asyncio.sleep(0.1)


@asynccontextmanager
async def _service(clusters: Clusters) -> AsyncIterator[Service]:
    settings = {
        "DATABASE_REPLICA_URL": clusters.replica.url.render_as_string(False),
        "POMREPORT_REPLICA_CHECK_SECONDS": str(CHECK_SECONDS),
        "POMREPORT_REPLICA_MAX_LAG_SECONDS": str(MAX_LAG_SECONDS),
        "POMREPORT_READ_YOUR_WRITES_SECONDS": str(READ_YOUR_WRITES_SECONDS),
        "POMREPORT_RATE_LIMITS": "false",
    }
    async with _serve(clusters.primary.url, settings) as instance:
        base_url = f"http://{instance.address}"

        def client(key: str | None) -> httpx.AsyncClient:
            headers = {"authorization": f"Bearer {key}"} if key else {}
            return httpx.AsyncClient(base_url=base_url, headers=headers, timeout=10)

        async with (
            client(clusters.writer_key) as writer,
            client(clusters.reader_key) as reader,
            client(None) as anyone,
        ):
            service = Service(writer, reader, anyone)
            await service.wait_until_replica(up=True)
            yield service


@asynccontextmanager
async def _replay_paused(replica: OwnCluster) -> AsyncIterator[None]:
    """The replica receives the primary's WAL but replays none of it meanwhile."""
    connection = await asyncpg.connect(_dsn(replica))
    try:
        await connection.execute("SELECT pg_wal_replay_pause()")
        yield
    finally:
        await connection.execute("SELECT pg_wal_replay_resume()")
        await connection.close()


def _dsn(cluster: OwnCluster) -> str:
    return cluster.url.set(drivername="postgresql").render_as_string(False)


def _ran_on(cluster: OwnCluster, marker: str) -> bool:
    """Whether a statement with `marker` among its parameters ran on `cluster`."""
    return marker in cluster.log.read_text(errors="replace")


def _times_on(cluster: OwnCluster, marker: str) -> int:
    """How often `marker` shows in `cluster`'s statement log."""
    return cluster.log.read_text(errors="replace").count(marker)


def _marker() -> str:
    return f"marker-{uuid.uuid4().hex[:12]}"


async def test_replica_serves_queries_the_report_summaries_and_the_csv(
    clusters: Clusters,
) -> None:
    async with _service(clusters) as service:
        readiness = await service.readiness()
        assert readiness["lagSeconds"] < MAX_LAG_SECONDS
        assert readiness["replica"] == 1  # by number: anyone may read /readyz
        metrics = await service.replica_metrics()
        assert metrics["pomreport_replica_up"] == 1
        marker = _marker()
        for query in (REPORT, REPORT, SUMMARY):  # the report twice: compiled path too
            await service.data(service.reader, query, agent=marker)
        await service.data(service.reader, CALLBACKS, agent=f"{marker}-connection")
        csv = await service.reader.get(CSV_PATH, params={"lastDays": 7, "agentId": marker})
        assert csv.status_code == 200
        assert csv.text.startswith("Campaign")
        assert _ran_on(clusters.replica, marker)
        assert _ran_on(clusters.replica, f"{marker}-connection")
        assert not _ran_on(clusters.primary, marker)
        assert (await service.reads_routed())["replica"] >= 5
        # Mutations write (and read their selection) on the primary; a standby could not.
        agent = _marker()
        await service.data(service.writer, UPSERT_AGENT, agentId=agent, name="Ava")
        assert _ran_on(clusters.primary, agent)


async def _agent_key(primary: OwnCluster, agent_id: str) -> str:
    engine = create_engine(primary.url)
    try:
        _row, key = await create_api_key(
            create_session_maker(engine), Role.AGENT, agent_id=agent_id, name="replica agent"
        )
        return key
    finally:
        await engine.dispose()


async def test_an_agent_keys_reads_on_the_replica_keep_its_row_scope(clusters: Clusters) -> None:
    """The agent scope is applied on the replica's sessions too: its statements there carry
    the agent's ID, which the requests themselves never name."""
    async with _service(clusters) as service:
        agent = _marker()
        await service.data(service.writer, UPSERT_AGENT, agentId=agent, name="Scoped")
        key = await _agent_key(clusters.primary, agent)
        headers = {"authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(
            base_url=service.reader.base_url, headers=headers, timeout=10
        ) as scoped:
            unfiltered = (REPORT, REPORT, SUMMARY)  # the report twice: the compiled path too
            for query in unfiltered:
                seen = _times_on(clusters.replica, agent)
                await service.data(scoped, query)
                assert _times_on(clusters.replica, agent) > seen, query
            seen = _times_on(clusters.replica, agent)
            csv = await scoped.get(CSV_PATH, params={"lastDays": 7})
            assert csv.status_code == 200
            assert _times_on(clusters.replica, agent) > seen
        assert (await service.reads_routed())["replica"] >= 3


async def test_reads_after_own_mutation_see_it_while_the_replica_lags(
    clusters: Clusters,
) -> None:
    async with _service(clusters) as service, _replay_paused(clusters.replica):
        agent = _marker()
        mutation = await service.writer.post(
            "/graphql",
            json={"query": UPSERT_AGENT, "variables": {"agentId": agent, "name": "Ava"}},
        )
        assert "errors" not in mutation.json()
        cookie = mutation.headers["set-cookie"]
        assert cookie.startswith("pomreport_wrote=1;")
        assert f"Max-Age={READ_YOUR_WRITES_SECONDS:.0f}" in cookie
        assert "HttpOnly" in cookie
        # The writer reads what it wrote: its key's window (kept by the process it wrote on).
        written = await service.data(service.writer, AGENT, agentId=agent)
        # Another key still reads the replica, which has not replayed the write.
        elsewhere = await service.reader.post(
            "/graphql", json={"query": AGENT, "variables": {"agentId": agent}}
        )
        assert (elsewhere.json().get("data") or {}).get("agent") is None, elsewhere.text
        assert _ran_on(clusters.replica, agent)
        # The cookie alone sends reads to the primary (what another process or instance the
        # client reaches goes by): here on a key the process noted no write for.
        with_cookie = await service.reader.post(
            "/graphql",
            json={"query": AGENT, "variables": {"agentId": agent}},
            headers={"cookie": "pomreport_wrote=1"},
        )
        assert with_cookie.json() == {"data": {"agent": {"name": "Ava"}}}
        assert written == {"agent": {"name": "Ava"}}


async def test_replica_lagging_past_the_bound_is_skipped_until_it_catches_up(
    clusters: Clusters,
) -> None:
    async with _service(clusters) as service:
        agent = _marker()
        async with _replay_paused(clusters.replica):
            await service.data(service.writer, UPSERT_AGENT, agentId=agent, name="Ava")
            lagging = await service.wait_until_replica(up=False, within=MAX_LAG_SECONDS + 5)
            assert "lags" in lagging["reason"]
            assert lagging["lagSeconds"] > MAX_LAG_SECONDS
            assert lagging["lagBytes"] > 0
            metrics = await service.replica_metrics()
            assert metrics["pomreport_replica_up"] == 0
            assert metrics["pomreport_replica_lag_seconds"] > MAX_LAG_SECONDS
            # The reader's reads went to the primary: they see the write.
            seen = await service.data(service.reader, AGENT, agentId=agent)
            assert seen == {"agent": {"name": "Ava"}}
        caught_up = await service.wait_until_replica(up=True)
        assert caught_up["lagSeconds"] < MAX_LAG_SECONDS
        assert (await service.replica_metrics())["pomreport_replica_up"] == 1


async def test_service_keeps_answering_while_the_replica_is_stopped(
    clusters: Clusters,
) -> None:
    async with _service(clusters) as service:
        marker = _marker()
        # Connections to the replica are pooled: the next read finds one dead.
        await service.data(service.reader, REPORT, agent=marker)
        assert _ran_on(clusters.replica, marker)
        await asyncio.to_thread(clusters.replica.stop)
        try:
            started = time.monotonic()
            for query in (REPORT, SUMMARY, CALLBACKS):
                await service.data(service.reader, query, agent=f"{marker}-while-stopped")
            csv = await service.reader.get(CSV_PATH, params={"lastDays": 7})
            assert csv.status_code == 200
            assert time.monotonic() - started < 3
            stopped = await service.wait_until_replica(up=False, within=3)
            assert "unreachable" in stopped["reason"] or "could not reach" in stopped["reason"]
            assert _ran_on(clusters.primary, f"{marker}-while-stopped")
            assert (await service.reads_routed())["primary"] >= 4
            assert (await service.replica_metrics())["pomreport_replica_up"] == 0
        finally:
            await asyncio.to_thread(clusters.replica.start)
        await service.wait_until_replica(up=True, within=15)
        again = _marker()
        await service.data(service.reader, REPORT, agent=again)
        assert _ran_on(clusters.replica, again)
        assert not _ran_on(clusters.primary, again)
