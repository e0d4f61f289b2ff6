"""Benchmark pomreport beside PostGraphile 5 on the same PostgreSQL database, in one run.

Usage:
    make bench-peers                       # npm ci when node_modules is missing, then this script
    .venv/bin/python bench/peers/peers.py [--scenarios a,b,c] [--requests 200] [--warmup 20]
        [--duration 15] [--warmup-seconds 3] [--connections 32] [--database-url URL]
        [--as-of 2026-11-29T03:00Z] [--json bench/peers/results.json]
        [--seed-if-missing [--seed-callbacks 1000000] [--admin-url URL]] [--pomreport-workers N]

The database (default postgresql://postgres@127.0.0.1:5432/seedbench) is the report benchmark's:
`pomreport seed --callbacks 1000000 --seed 1 --as-of 2026-11-29T03:00Z`. When it is missing or
empty the script says how to make it, or makes it with --seed-if-missing (CREATE DATABASE through
--admin-url, `pomreport migrate`, then that seed command with --as-of).

Both servers run as child processes on loopback, one process each: `pomreport serve` (open
development mode, so the database must hold no API key; expiry sweeper off) and PostGraphile 5
(bench/peers/serve.mjs: amber preset, connection-filter plugin, NODE_ENV=production, the Node 22
of bench/peers/node_modules). Per scenario, the report of callbacks created in the N days before
--as-of (from inclusive, to exclusive), by creation time then callback ID, with the total count
and every row's columns and nested campaign, job, agents, contact and attempts:

    a: the busiest creator agent of the 7 days, first 100 rows
    b: all agents, 7 days, first 100 rows
    c: all agents, 30 days, first 500 rows

Before anything is measured, both servers' answers are normalised (same keys, timestamps as
instants, enum texts as the service's enum members) and must be equal, count included. Then, per
scenario and server, with autocannon (bench/peers/load.mjs) for both:

    c=1:  --warmup requests, then --requests sequential keep-alive requests: p50 / p90 / p99;
    c=32: --warmup-seconds, then --duration seconds: successful req/s (2xx without "errors"),
          latency, non-2xx and error bodies;

and around each measured load the CPU time (utime + stime, /proc) of the server's process tree
and of all PostgreSQL processes (with what exited ones left in the postmaster's cutime/cstime),
per request. pomreport's SQL floor: the statements one request runs, captured in-process from
SQLAlchemy's `before_cursor_execute`, replayed through asyncpg on one connection, one after
another, --requests times after --warmup. Prints a markdown table and writes every figure, the
commit, whether the tree is dirty, the versions and a CPU check (a fixed Python loop before and
after) to --json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import enum
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import asyncpg
import httpx
from sqlalchemy import event
from starlette.testclient import TestClient

from service.app import create_app
from service.db.models.callback import CallbackStatus, CallbackType, SystemCompletionCode
from service.db.models.campaign import CampaignType
from service.settings import Settings, parse_database_url

# report_latency.py sits one directory up and is not a package: reuse its helpers from there.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from report_latency import (
    BenchError,
    Statement,
    Summary,
    asyncpg_dsn,
    cpu_check,
    free_port,
    pomreport_command,
    to_asyncpg,
)

HERE = Path(__file__).resolve().parent
REPOSITORY = HERE.parent.parent
NODE = HERE / "node_modules" / ".bin" / "node"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/seedbench"
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_AS_OF = "2026-11-29T03:00Z"
DEFAULT_JSON = HERE / "results.json"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SERVER_START_SECONDS = 90

# The report's columns and nested objects. Left out: campaignName, campaignDisplayName and
# createdFor, which pomreport derives in Python (name and display name of the campaign, the
# created-for agent or the campaign name); the campaign's name is compared through `campaign`.
POMREPORT_QUERY = """
query Report($timePeriod: TimePeriodInput!, $filters: CallbacksScheduledDetailsFilters,
             $first: Int!) {
  callbacksScheduledDetails(timePeriod: $timePeriod, filters: $filters) {
    totalRecords
    rows(first: $first, orderBy: [{field: CREATION_TIME, direction: ASC},
                                  {field: CALLBACK_ID, direction: ASC}]) {
      edges { node {
        callbackId callbackType jobId creatorAgentId createdForAgentId contactId callId
        creationTime scheduledStartTime scheduledEndTime callbackStatus servicedByAgentId
        interactionAttemptTime customCompletionCode systemCompletionCode
        campaign { name campaignType strategyName }
        job { jobId }
        creatorAgent { agentId name }
        servicedByAgent { agentId }
        contact { contactId timeZone }
        attempts { attemptTime dummy systemCompletionCode }
      } }
    }
  }
}
"""

# The same selection in PostGraphile's default (amber) names: columns keep the table's names
# (createdAt, status, lastAttemptAt), relations are named after their foreign keys, and the
# amber preset offers orderBy only on indexed columns, which covers both orders needed here.
POSTGRAPHILE_QUERY = """
query Report($filter: CallbackFilter!, $first: Int!) {
  allCallbacks(filter: $filter, orderBy: [CREATED_AT_ASC, CALLBACK_ID_ASC], first: $first) {
    totalCount
    edges { node {
      callbackId callbackType jobId creatorAgentId createdForAgentId contactId callId
      createdAt scheduledStartAt scheduledEndAt status servicedByAgentId lastAttemptAt
      customCompletionCode systemCompletionCode
      campaignByCampaignId { name campaignType strategyName }
      jobByJobIdAndCampaignId { jobId }
      agentByCreatorAgentId { agentId name }
      agentByServicedByAgentId { agentId }
      contactByContactId { contactId timeZone }
      callbackAttemptsByCallbackId(orderBy: [ATTEMPTED_AT_ASC, ROW_ID_ASC]) {
        nodes { attemptedAt isDummy systemCompletionCode }
      }
    } }
  }
}
"""

POMREPORT = "pomreport"
POSTGRAPHILE = "PostGraphile"
SERVERS = (POMREPORT, POSTGRAPHILE)


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    days: int
    busiest_agent: bool  # filter on the creator agent with most callbacks in the period
    first: int


SCENARIOS = {
    "a": Scenario("a", 7, busiest_agent=True, first=100),
    "b": Scenario("b", 7, busiest_agent=False, first=100),
    "c": Scenario("c", 30, busiest_agent=False, first=500),
}


@dataclass(frozen=True, slots=True)
class Report:
    """A scenario resolved against the database: its period, agent and the two requests."""

    scenario: Scenario
    start: dt.datetime  # inclusive
    end: dt.datetime  # exclusive
    agent_id: str | None

    @property
    def title(self) -> str:
        who = f"agent {self.agent_id}" if self.agent_id else "all agents"
        return (
            f"{self.scenario.name}: {who}, {self.scenario.days} days, first {self.scenario.first}"
        )

    def payload(self, server: str) -> dict[str, Any]:
        if server == POMREPORT:
            filters = None if self.agent_id is None else {"agentId": self.agent_id}
            return {
                "query": POMREPORT_QUERY,
                "variables": {
                    "timePeriod": {"from": self.start.isoformat(), "to": self.end.isoformat()},
                    "filters": filters,
                    "first": self.scenario.first,
                },
            }
        # The filter is built per scenario: connection-filter refuses `equalTo: null`.
        condition: dict[str, Any] = {
            "createdAt": {
                "greaterThanOrEqualTo": self.start.isoformat(),
                "lessThan": self.end.isoformat(),
            }
        }
        if self.agent_id is not None:
            condition["creatorAgentId"] = {"equalTo": self.agent_id}
        return {
            "query": POSTGRAPHILE_QUERY,
            "variables": {"filter": condition, "first": self.scenario.first},
        }


# --- the database -------------------------------------------------------------------------------


async def _database_state(dsn: str) -> tuple[int | None, int]:
    """Callbacks in the database (None: no such database) and API keys it holds."""
    try:
        connection = await asyncpg.connect(dsn)
    except asyncpg.InvalidCatalogNameError:
        return None, 0
    try:
        if await connection.fetchval("SELECT to_regclass('public.callback')") is None:
            return 0, 0
        callbacks = int(await connection.fetchval("SELECT count(*) FROM callback"))
        keys = int(await connection.fetchval("SELECT count(*) FROM api_key"))
        return callbacks, keys
    finally:
        await connection.close()


async def _create_database(admin_dsn: str, name: str) -> None:
    connection = await asyncpg.connect(admin_dsn)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


def ensure_seeded(arguments: argparse.Namespace) -> int:
    """The database's callback count; create, migrate and seed it first if asked and needed.
    Refuses a database with API keys: pomreport is measured in open development mode."""
    raw_url: str = arguments.database_url
    url = parse_database_url(raw_url)
    seed = ["seed", "--callbacks", str(arguments.seed_callbacks), "--seed", "1"]
    seed += ["--as-of", arguments.as_of]
    callbacks, keys = asyncio.run(_database_state(asyncpg_dsn(url)))
    if not callbacks:
        state = "does not exist" if callbacks is None else "holds no callbacks"
        environment = f"DATABASE_URL={raw_url}"
        if not arguments.seed_if_missing:
            create = f"createdb -h {url.host or '127.0.0.1'} -U {url.username or 'postgres'} "
            raise BenchError(
                f"the database {url.database} {state}. Create and seed it with\n"
                + (f"  {create}{url.database}\n" if callbacks is None else "")
                + f"  {environment} .venv/bin/pomreport migrate\n"
                f"  {environment} .venv/bin/pomreport {' '.join(seed)}\n"
                "(about a minute for 1000000 callbacks), or rerun with --seed-if-missing."
            )
        if callbacks is None:
            print(f"creating database {url.database} through {arguments.admin_url}", flush=True)
            admin_dsn = asyncpg_dsn(parse_database_url(arguments.admin_url))
            asyncio.run(_create_database(admin_dsn, str(url.database)))
        child_environment = dict(os.environ, DATABASE_URL=raw_url)
        for command in (["migrate"], seed):
            print(f"running pomreport {' '.join(command)}", flush=True)
            subprocess.run(
                pomreport_command() + command, env=child_environment, cwd=REPOSITORY, check=True
            )
        callbacks, keys = asyncio.run(_database_state(asyncpg_dsn(url)))
        if not callbacks:
            raise BenchError(f"seeding {url.database} left it without callbacks")
    if keys:
        raise BenchError(
            f"the database {url.database} holds {keys} API key(s), so pomreport would not serve "
            "in open development mode, which this benchmark measures (as report_latency.py "
            "does); use a database without keys"
        )
    return callbacks


async def _resolve(dsn: str, scenarios: Sequence[Scenario], as_of: dt.datetime) -> list[Report]:
    """Each scenario's period and, where it asks for one, its busiest creator agent."""
    connection = await asyncpg.connect(dsn)
    try:
        reports = []
        for scenario in scenarios:
            start = as_of - dt.timedelta(days=scenario.days)
            agent_id = None
            if scenario.busiest_agent:
                row = await connection.fetchrow(
                    "SELECT creator_agent_id FROM callback"
                    " WHERE created_at >= $1 AND created_at < $2"
                    " GROUP BY creator_agent_id ORDER BY count(*) DESC, creator_agent_id LIMIT 1",
                    start,
                    as_of,
                )
                if row is None:
                    newest = await connection.fetchval("SELECT max(created_at) FROM callback")
                    raise BenchError(
                        f"no callbacks created in the {scenario.days} days before "
                        f"{as_of.isoformat()} (newest: {newest}); pass the seed's --as-of"
                    )
                agent_id = str(row[0])
            reports.append(Report(scenario, start, as_of, agent_id))
        return reports
    finally:
        await connection.close()


async def _server_version(dsn: str) -> str:
    connection = await asyncpg.connect(dsn)
    try:
        return str(await connection.fetchval("SHOW server_version"))
    finally:
        await connection.close()


# --- the two answers, normalised ----------------------------------------------------------------

Row = dict[str, Any]


def _instant(text: str | None) -> dt.datetime | None:
    """A timestamp as an instant: the two servers may write different offsets for it."""
    return None if text is None else dt.datetime.fromisoformat(text)


def _member(enum_class: type[enum.Enum], text: str | None) -> enum.Enum | None:
    """The service's enum member for a text. pomreport's GraphQL enum values are the member
    names, and SQLAlchemy stores the member name in the VARCHAR PostGraphile reads."""
    return None if text is None else enum_class[text]


def _data(server: str, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or body.get("errors") or not body.get("data"):
        raise BenchError(f"{server} answered with errors: {json.dumps(body)[:800]}")
    data: dict[str, Any] = body["data"]
    return data


# The report's columns under pomreport's names, and where PostGraphile's differ.
COLUMNS = [
    "callbackId",
    "callbackType",
    "jobId",
    "creatorAgentId",
    "createdForAgentId",
    "contactId",
    "callId",
    "creationTime",
    "scheduledStartTime",
    "scheduledEndTime",
    "callbackStatus",
    "servicedByAgentId",
    "interactionAttemptTime",
    "customCompletionCode",
    "systemCompletionCode",
]
POSTGRAPHILE_COLUMNS = {
    "creationTime": "createdAt",
    "scheduledStartTime": "scheduledStartAt",
    "scheduledEndTime": "scheduledEndAt",
    "callbackStatus": "status",
    "interactionAttemptTime": "lastAttemptAt",
}
POSTGRAPHILE_RELATIONS = {
    "campaign": "campaignByCampaignId",
    "job": "jobByJobIdAndCampaignId",
    "creatorAgent": "agentByCreatorAgentId",
    "servicedByAgent": "agentByServicedByAgentId",
    "contact": "contactByContactId",
}
TIMES = ("creationTime", "scheduledStartTime", "scheduledEndTime", "interactionAttemptTime")
ENUMS: dict[str, type[enum.Enum]] = {
    "callbackType": CallbackType,
    "callbackStatus": CallbackStatus,
    "systemCompletionCode": SystemCompletionCode,
}


def _row(
    node: dict[str, Any],
    columns: dict[str, str],
    relations: dict[str, str],
    attempts: list[dict[str, Any]],
    attempt_fields: tuple[str, str],
) -> Row:
    """One row under pomreport's field names; `columns` and `relations` map them to the
    server's, `attempt_fields` names an attempt's time and dummy flag."""
    row = {ours: node[columns.get(ours, ours)] for ours in COLUMNS}
    for name in TIMES:
        row[name] = _instant(row[name])
    for name, enum_class in ENUMS.items():
        row[name] = _member(enum_class, row[name])
    for ours in POSTGRAPHILE_RELATIONS:
        row[ours] = node[relations.get(ours, ours)]
    row["campaign"] = dict(
        row["campaign"], campaignType=_member(CampaignType, row["campaign"]["campaignType"])
    )
    time_field, dummy_field = attempt_fields
    row["attempts"] = [
        {
            "attemptTime": _instant(attempt[time_field]),
            "dummy": attempt[dummy_field],
            "systemCompletionCode": _member(SystemCompletionCode, attempt["systemCompletionCode"]),
        }
        for attempt in attempts
    ]
    return row


def pomreport_rows(body: Any) -> tuple[int, list[Row]]:
    report = _data(POMREPORT, body)["callbacksScheduledDetails"]
    nodes = [edge["node"] for edge in report["rows"]["edges"]]
    rows = [_row(node, {}, {}, node["attempts"], ("attemptTime", "dummy")) for node in nodes]
    return int(report["totalRecords"]), rows


def postgraphile_rows(body: Any) -> tuple[int, list[Row]]:
    connection = _data(POSTGRAPHILE, body)["allCallbacks"]
    rows = [
        _row(
            node,
            POSTGRAPHILE_COLUMNS,
            POSTGRAPHILE_RELATIONS,
            node["callbackAttemptsByCallbackId"]["nodes"],
            ("attemptedAt", "isDummy"),
        )
        for node in (edge["node"] for edge in connection["edges"])
    ]
    return int(connection["totalCount"]), rows


def check_identical(report: Report, bodies: dict[str, Any]) -> tuple[int, int]:
    """The total and the number of rows, once both servers' answers are equal field by field."""
    total, rows = pomreport_rows(bodies[POMREPORT])
    peer_total, peer_rows = postgraphile_rows(bodies[POSTGRAPHILE])
    problems = []
    if total != peer_total:
        problems.append(f"total: pomreport {total}, PostGraphile {peer_total}")
    if len(rows) != len(peer_rows):
        problems.append(f"rows: pomreport {len(rows)}, PostGraphile {len(peer_rows)}")
    for index, (ours, theirs) in enumerate(zip(rows, peer_rows, strict=False)):
        for field in ours.keys() | theirs.keys():
            if ours.get(field) != theirs.get(field):
                problems.append(
                    f"row {index} ({ours.get('callbackId')}) {field}: pomreport "
                    f"{ours.get(field)!r}, PostGraphile {theirs.get(field)!r}"
                )
    expected = min(total, report.scenario.first)
    if len(rows) != expected:
        problems.append(f"pomreport returned {len(rows)} rows, expected {expected}")
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise BenchError(f"scenario {report.title}: the answers differ:\n  {shown}{more}")
    return total, len(rows)


# --- the servers --------------------------------------------------------------------------------


@dataclass(slots=True)
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: IO[bytes]

    def log_tail(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-3000:]

    def log_excerpt(self, limit: int = 200) -> list[str]:
        """The server's own messages (tracebacks, warnings), access log left out: each distinct
        line once, with how often it came."""
        self.log.seek(0)
        counts: dict[str, int] = {}
        for line in self.log.read().decode(errors="replace").splitlines():
            if " /graphql HTTP/1.1" not in line and line.strip():
                line = re.sub(r"0x[0-9a-f]+", "0x...", line)  # object addresses differ
                counts[line] = counts.get(line, 0) + 1
        lines = [line if n == 1 else f"[{n}x] {line}" for line, n in counts.items()]
        return lines[:limit]


def _stop(process: subprocess.Popen[bytes]) -> None:
    """End the child and anything it started: its own process group."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextlib.contextmanager
def serving(
    name: str, command: list[str], environment: dict[str, str], port: int
) -> Iterator[Server]:
    """A server child process in a process group of its own, ready to answer GraphQL."""
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            command,
            env=environment,
            cwd=HERE if name == POSTGRAPHILE else REPOSITORY,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        server = Server(name, f"http://127.0.0.1:{port}/graphql", process, log)
        try:
            _wait_ready(server)
            yield server
        finally:
            _stop(process)


def _wait_ready(server: Server) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    with httpx.Client(timeout=10) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise BenchError(
                    f"{server.name} exited ({server.process.returncode}):\n{server.log_tail()}"
                )
            with contextlib.suppress(httpx.TransportError):
                response = client.post(server.url, json={"query": "{ __typename }"})
                if response.status_code == 200 and "errors" not in response.json():
                    return
            time.sleep(0.2)
    raise BenchError(f"{server.name} was not ready within {SERVER_START_SECONDS} s")


def start_pomreport(raw_url: str, workers: int = 1) -> contextlib.AbstractContextManager[Server]:
    port = free_port()
    environment = dict(os.environ, DATABASE_URL=raw_url, POMREPORT_EXPIRY_SWEEP_SECONDS="0")
    command = [*pomreport_command(), "serve", "--host", "127.0.0.1", "--port", str(port)]
    if workers > 1:
        command += ["--workers", str(workers)]
    return serving(POMREPORT, command, environment, port)


def start_postgraphile(raw_url: str) -> contextlib.AbstractContextManager[Server]:
    port = free_port()
    # node-postgres takes a plain postgresql:// URL, never SQLAlchemy's +asyncpg driver suffix.
    plain = parse_database_url(raw_url).set(drivername="postgresql")
    environment = dict(
        os.environ,
        DATABASE_URL=plain.render_as_string(hide_password=False),
        PORT=str(port),
        NODE_ENV="production",
        GRAPHILE_ENV="production",
    )
    return serving(POSTGRAPHILE, [str(NODE), str(HERE / "serve.mjs")], environment, port)


# --- CPU time from /proc ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProcStat:
    pid: int
    comm: str
    ppid: int
    ticks: int  # utime + stime + cutime + cstime: the process and its reaped children


def _proc_stats() -> list[ProcStat]:
    stats = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:  # it exited meanwhile
            continue
        # The command name is in parentheses and may itself hold spaces or parentheses.
        comm = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        # Fields after the name, from 3 (state): ppid is 4, utime..cstime are 14..17.
        ticks = sum(int(value) for value in fields[11:15])
        stats.append(ProcStat(int(entry.name), comm, int(fields[1]), ticks))
    return stats


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds of a process and its descendants so far."""
    stats = _proc_stats()
    children: dict[int, list[ProcStat]] = {}
    for stat in stats:
        children.setdefault(stat.ppid, []).append(stat)
    own = [stat for stat in stats if stat.pid == root]
    total, pending = 0, list(own)
    while pending:
        stat = pending.pop()
        total += stat.ticks
        pending.extend(children.get(stat.pid, []))
    return total / CLOCK_TICKS


def postgres_cpu_seconds() -> float | None:
    """CPU seconds of all PostgreSQL processes so far, including exited backends and parallel
    workers (reaped by the postmaster, so in its cutime/cstime); None when none is visible."""
    stats = [stat for stat in _proc_stats() if stat.comm == "postgres"]
    return sum(stat.ticks for stat in stats) / CLOCK_TICKS if stats else None


# --- load ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Load:
    """One autocannon run and the CPU the server and PostgreSQL spent during it."""

    connections: int
    ok: int  # 2xx without "errors"
    error_bodies: int  # 2xx with "errors"
    non2xx: int
    connection_errors: int
    timeouts: int
    seconds: float
    latencies_ms: list[float]
    statuses: dict[str, int]  # responses per HTTP status
    failed_samples: dict[str, str]  # the first failed response's body per HTTP status
    server_cpu_seconds: float
    postgres_cpu_seconds: float | None

    @property
    def responses(self) -> int:
        return self.ok + self.error_bodies + self.non2xx

    @property
    def successful_per_second(self) -> float:
        return self.ok / self.seconds

    @property
    def latency(self) -> Summary:
        return Summary.of([ms / 1000 for ms in self.latencies_ms])

    @property
    def failures(self) -> int:
        return self.error_bodies + self.non2xx + self.connection_errors + self.timeouts

    def server_cpu_ms_per_request(self) -> float:
        return self.server_cpu_seconds * 1000 / max(self.responses, 1)

    def postgres_cpu_ms_per_request(self) -> float | None:
        if self.postgres_cpu_seconds is None:
            return None
        return self.postgres_cpu_seconds * 1000 / max(self.responses, 1)

    def figures(self, raw_latencies: bool) -> dict[str, Any]:
        latency = self.latency
        figures: dict[str, Any] = {
            "connections": self.connections,
            "responses": self.responses,
            "ok": self.ok,
            "error_bodies": self.error_bodies,
            "non2xx": self.non2xx,
            "connection_errors": self.connection_errors,
            "timeouts": self.timeouts,
            "statuses": self.statuses,
            "failed_samples": self.failed_samples,
            "seconds": self.seconds,
            "successful_per_second": self.successful_per_second,
            "latency_ms": {"p50": latency.median, "p90": latency.p90, "p99": latency.p99},
            "latency_ms_mean": statistics.mean(self.latencies_ms),
            "latency_ms_max": max(self.latencies_ms),
            "server_cpu_seconds": self.server_cpu_seconds,
            "server_cpu_ms_per_request": self.server_cpu_ms_per_request(),
            "postgres_cpu_seconds": self.postgres_cpu_seconds,
            "postgres_cpu_ms_per_request": self.postgres_cpu_ms_per_request(),
        }
        if raw_latencies:
            figures["latencies_ms"] = self.latencies_ms
        return figures


def autocannon(
    server: Server,
    payload: dict[str, Any],
    connections: int,
    *,
    amount: int | None = None,
    duration: float | None = None,
) -> Load:
    """Run bench/peers/load.mjs against the server, timing its CPU and PostgreSQL's around it."""
    options: dict[str, Any] = {
        "url": server.url,
        "body": json.dumps(payload),
        "connections": connections,
    }
    options.update({"amount": amount} if amount is not None else {"duration": duration})
    server_before, postgres_before = tree_cpu_seconds(server.process.pid), postgres_cpu_seconds()
    finished = subprocess.run(
        [str(NODE), str(HERE / "load.mjs"), json.dumps(options)],
        cwd=HERE,
        capture_output=True,
        text=True,
        check=False,
    )
    server_after, postgres_after = tree_cpu_seconds(server.process.pid), postgres_cpu_seconds()
    if finished.returncode != 0:
        raise BenchError(f"autocannon failed ({finished.returncode}):\n{finished.stderr[-2000:]}")
    if server.process.poll() is not None:
        raise BenchError(f"{server.name} exited during the load:\n{server.log_tail()}")
    result = json.loads(finished.stdout)
    postgres_seconds = (
        None
        if postgres_before is None or postgres_after is None
        else postgres_after - postgres_before
    )
    return Load(
        connections=connections,
        ok=result["ok"],
        error_bodies=result["errorBodies"],
        non2xx=result["non2xx"],
        connection_errors=result["connectionErrors"],
        timeouts=result["timeouts"],
        seconds=result["durationSeconds"],
        latencies_ms=result["latenciesMs"],
        statuses=result["statuses"],
        failed_samples=result["failedSamples"],
        server_cpu_seconds=server_after - server_before,
        postgres_cpu_seconds=postgres_seconds,
    )


# --- pomreport's SQL floor ----------------------------------------------------------------------


def capture_statements(settings: Settings, payload: dict[str, Any]) -> list[Statement]:
    """Run the request in-process; the statements it sent, as asyncpg receives them."""
    recorded: list[tuple[str, Any]] = []

    def record(
        _connection: Any, _cursor: Any, sql: str, parameters: Any, _context: Any, _many: bool
    ) -> None:
        recorded.append((sql, parameters))

    app = create_app(settings)
    with TestClient(app) as client:
        _data(POMREPORT, client.post("/graphql", json=payload).json())  # warm: plan cache
        event.listen(app.state.engine.sync_engine, "before_cursor_execute", record)
        body = client.post("/graphql", json=payload).json()
        event.remove(app.state.engine.sync_engine, "before_cursor_execute", record)
    _data(POMREPORT, body)
    return [Statement(*to_asyncpg(sql, parameters), None) for sql, parameters in recorded]


@dataclass(frozen=True, slots=True)
class Floor:
    statements: list[Statement]
    rows: list[int]
    per_request: list[float]  # seconds


async def replay(dsn: str, statements: list[Statement], warmup: int, requests: int) -> Floor:
    """The statements one after another on one connection, `requests` times after `warmup`."""
    connection = await asyncpg.connect(dsn)
    try:
        rows = [len(await connection.fetch(s.sql, *s.parameters)) for s in statements]
        per_request = []
        for iteration in range(warmup + requests):
            started = time.perf_counter()
            for statement in statements:
                await connection.fetch(statement.sql, *statement.parameters)
            if iteration >= warmup:
                per_request.append(time.perf_counter() - started)
    finally:
        await connection.close()
    return Floor(statements, rows, per_request)


# --- the run ------------------------------------------------------------------------------------


@dataclass(slots=True)
class Measured:
    report: Report
    total: int
    rows: int
    floor: Floor = dataclasses.field(default_factory=lambda: Floor([], [], []))
    sequential: dict[str, Load] = dataclasses.field(default_factory=dict)
    concurrent: dict[str, Load] = dataclasses.field(default_factory=dict)


def sequential_load(report: Report, server: Server, warmup: int, requests: int) -> Load:
    """c=1: `warmup` requests, then `requests` measured ones, every one answered in full."""
    payload = report.payload(server.name)
    autocannon(server, payload, 1, amount=warmup)
    load = autocannon(server, payload, 1, amount=requests)
    if load.failures or load.responses != requests:
        raise BenchError(
            f"{server.name} failed at c=1 in scenario {report.title}: {load.ok} ok of "
            f"{requests}, {load.error_bodies} error bodies, {load.non2xx} non-2xx, "
            f"{load.connection_errors} connection errors, {load.timeouts} timeouts"
        )
    return load


def _git(*arguments: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPOSITORY), *arguments], capture_output=True, text=True, check=True
    ).stdout.strip()


def _package_version(name: str) -> str:
    manifest = HERE / "node_modules" / name / "package.json"
    return str(json.loads(manifest.read_text())["version"])


def versions(dsn: str) -> dict[str, str]:
    node = subprocess.run([str(NODE), "--version"], capture_output=True, text=True, check=True)
    found = {name: _package_version(name) for name in ("postgraphile", "autocannon")}
    found["postgraphile-plugin-connection-filter"] = _package_version(
        "postgraphile-plugin-connection-filter"
    )
    found["node"] = node.stdout.strip()
    found["python"] = sys.version.split()[0]
    found["postgresql"] = asyncio.run(_server_version(dsn))
    return found


def run(arguments: argparse.Namespace) -> None:
    started = time.monotonic()
    if not NODE.exists():
        raise BenchError(f"{NODE} is missing: run `make bench-peers` (npm ci in bench/peers) first")
    names = [name.strip() for name in arguments.scenarios.split(",") if name.strip()]
    if unknown := [name for name in names if name not in SCENARIOS]:
        raise BenchError(f"unknown scenario(s) {', '.join(unknown)}; choose from a, b, c")
    as_of = dt.datetime.fromisoformat(arguments.as_of.replace("Z", "+00:00")).astimezone(dt.UTC)
    raw_url: str = arguments.database_url
    requests: int = arguments.requests
    warmup: int = arguments.warmup
    connections: int = arguments.connections
    callbacks = ensure_seeded(arguments)
    settings = dataclasses.replace(
        Settings.from_environment(
            dict(os.environ, DATABASE_URL=raw_url, POMREPORT_EXPIRY_SWEEP_SECONDS="0")
        ),
        open_without_keys=True,  # as `serve` on loopback without keys
    )
    dsn = asyncpg_dsn(settings.database_url)
    reports = asyncio.run(_resolve(dsn, [SCENARIOS[name] for name in names], as_of))
    found = versions(dsn)
    print(
        f"database {settings.database_url.database}: {callbacks:,} callbacks, as of "
        f"{as_of.isoformat()}; PostGraphile {found['postgraphile']} on Node {found['node']}, "
        f"autocannon {found['autocannon']}",
        flush=True,
    )
    cpu_before = cpu_check()

    measured: list[Measured] = []
    with (
        start_pomreport(raw_url, arguments.pomreport_workers) as pomreport,
        start_postgraphile(raw_url) as postgraphile,
    ):
        servers = {POMREPORT: pomreport, POSTGRAPHILE: postgraphile}
        with httpx.Client(timeout=60) as client:
            for report in reports:
                bodies = {
                    name: client.post(server.url, json=report.payload(name)).json()
                    for name, server in servers.items()
                }
                total, rows = check_identical(report, bodies)
                print(
                    f"scenario {report.title}: {rows} rows of {total:,}, identical on both",
                    flush=True,
                )
                measured.append(Measured(report, total, rows))
        for item in measured:
            print(f"{item.report.scenario.name}: pomreport's SQL floor ...", flush=True)
            statements = capture_statements(settings, item.report.payload(POMREPORT))
            item.floor = asyncio.run(replay(dsn, statements, warmup, requests))
        for item in measured:
            # Alternating the servers within each scenario spreads any drift of the shared
            # machine over both.
            for name, server in servers.items():
                print(f"{item.report.scenario.name}: {name} c=1 ...", flush=True)
                item.sequential[name] = sequential_load(item.report, server, warmup, requests)
            for name, server in servers.items():
                print(f"{item.report.scenario.name}: {name} c={connections} ...", flush=True)
                payload = item.report.payload(name)
                autocannon(server, payload, connections, duration=arguments.warmup_seconds)
                item.concurrent[name] = autocannon(
                    server, payload, connections, duration=arguments.duration
                )
        # Kept in the results: what the servers said while they were measured (tracebacks).
        logs = {name: server.log_excerpt() for name, server in servers.items()}
    cpu_after = cpu_check()
    elapsed = time.monotonic() - started
    print_tables(measured, connections)
    path = Path(arguments.json)
    inside = path.resolve().is_relative_to(REPOSITORY)
    excluded = [f":!{path.resolve().relative_to(REPOSITORY)}"] if inside else []
    results = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": _git("rev-parse", "HEAD"),
        # The results file itself does not make the tree dirty.
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no", "--", ".", *excluded)),
        "database": settings.database_url.render_as_string(hide_password=True),
        "callbacks": callbacks,
        "as_of": as_of.isoformat(),
        "versions": found,
        "settings": {
            "pomreport_workers": arguments.pomreport_workers,
            "requests": requests,
            "warmup_requests": warmup,
            "duration_seconds": arguments.duration,
            "warmup_seconds": arguments.warmup_seconds,
            "connections": connections,
            "clock_ticks_per_second": CLOCK_TICKS,
            "cpus": os.cpu_count(),
        },
        "cpu_check_ms": {
            "before": dataclasses.asdict(cpu_before),
            "after": dataclasses.asdict(cpu_after),
        },
        "run_seconds": elapsed,
        "scenarios": [scenario_figures(item) for item in measured],
        "server_logs": logs,
    }
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print()
    print(
        f"CPU check (a fixed Python loop, ms median / p90 / p99): before {_ms(cpu_before)}, "
        f"after {_ms(cpu_after)}; the whole run took {elapsed:.0f} s"
    )
    print(f"wrote {path.resolve()}")


def scenario_figures(item: Measured) -> dict[str, Any]:
    floor = Summary.of(item.floor.per_request)
    return {
        "scenario": item.report.scenario.name,
        "title": item.report.title,
        "from": item.report.start.isoformat(),
        "to": item.report.end.isoformat(),
        "agent_id": item.report.agent_id,
        "first": item.report.scenario.first,
        "total": item.total,
        "rows": item.rows,
        "sql_floor": {
            "latency_ms": {"p50": floor.median, "p90": floor.p90, "p99": floor.p99},
            "statements": [
                {"sql": statement.sql, "rows": rows}
                for statement, rows in zip(item.floor.statements, item.floor.rows, strict=True)
            ],
        },
        "c1": {name: load.figures(raw_latencies=True) for name, load in item.sequential.items()},
        "concurrent": {
            name: load.figures(raw_latencies=False) for name, load in item.concurrent.items()
        },
    }


def _ms(summary: Summary) -> str:
    return f"{summary.median:.1f} / {summary.p90:.1f} / {summary.p99:.1f}"


def _pair(values: Sequence[float | None], digits: int) -> str:
    return " / ".join("n/a" if value is None else f"{value:,.{digits}f}" for value in values)


def print_tables(measured: Sequence[Measured], connections: int) -> None:
    print()
    print(
        "| scenario | rows / total | pomreport p50 | PostGraphile p50 | SQL floor "
        f"| req/s c={connections} pomreport / PostGraphile "
        "| server CPU/request pomreport / PostGraphile "
        "| PG CPU/request pomreport / PostGraphile "
        f"| errors at c={connections} pomreport / PostGraphile |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for item in measured:
        c1, c32 = item.sequential, item.concurrent
        floor = statistics.median(item.floor.per_request) * 1000
        print(
            f"| {item.report.title} | {item.rows} / {item.total:,} "
            f"| {c1[POMREPORT].latency.median:.1f} ms | {c1[POSTGRAPHILE].latency.median:.1f} ms "
            f"| {floor:.1f} ms "
            f"| {_pair([c32[name].successful_per_second for name in SERVERS], 1)} "
            f"| {_pair([c32[name].server_cpu_ms_per_request() for name in SERVERS], 1)} ms "
            f"| {_pair([c32[name].postgres_cpu_ms_per_request() for name in SERVERS], 1)} ms "
            f"| {' / '.join(str(c32[name].failures) for name in SERVERS)} |"
        )
    print()
    print(
        "Latency in ms at c=1 (p50 / p90 / p99) and at c="
        f"{connections}; CPU per request at c=1 (server, PostgreSQL):"
    )
    print()
    print(
        f"| scenario | server | c=1 p50 / p90 / p99 | c=1 CPU ms server / PG "
        f"| c={connections} p50 / p90 / p99 | c={connections} responses in s "
        "| ok / error bodies / non-2xx / connection errors |"
    )
    print("|---|---|---|---|---|---|---|")
    for item in measured:
        for name in SERVERS:
            sequential, concurrent = item.sequential[name], item.concurrent[name]
            cpu = [sequential.server_cpu_ms_per_request(), sequential.postgres_cpu_ms_per_request()]
            print(
                f"| {item.report.scenario.name} | {name} | {_ms(sequential.latency)} "
                f"| {_pair(cpu, 1)} | {_ms(concurrent.latency)} "
                f"| {concurrent.responses:,} in {concurrent.seconds:.1f} "
                f"| {concurrent.ok:,} / {concurrent.error_bodies} / {concurrent.non2xx} / "
                f"{concurrent.connection_errors + concurrent.timeouts} |"
            )
    print()
    print(
        "SQL floor: pomreport's statements for one request (median of the sequential replays); "
        "CPU per request from /proc utime+stime over the measured load, divided by responses; "
        "PG CPU covers every PostgreSQL process on the machine."
    )
    for item in measured:
        for name in SERVERS:
            load = item.concurrent[name]
            for status, body in load.failed_samples.items():
                print(
                    f"failures, {item.report.scenario.name} {name} c={connections}: "
                    f"{load.statuses.get(status, 0)} x HTTP {status}, the first: {body[:400]}"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--scenarios", default="a,b,c", help="comma-separated: a, b, c")
    parser.add_argument("--requests", type=int, default=200, help="measured requests at c=1")
    parser.add_argument("--warmup", type=int, default=20, help="requests before measuring c=1")
    parser.add_argument("--duration", type=float, default=15, help="seconds of load at c=32")
    parser.add_argument("--warmup-seconds", type=float, default=3, help="load before c=32")
    parser.add_argument("--connections", type=int, default=32, help="the concurrent load's")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--as-of", default=DEFAULT_AS_OF, help="the seed's --as-of")
    parser.add_argument("--json", default=str(DEFAULT_JSON), help="where to write the figures")
    parser.add_argument(
        "--seed-if-missing",
        action="store_true",
        help="create, migrate and seed the database when it is missing or empty",
    )
    parser.add_argument("--seed-callbacks", type=int, default=1_000_000)
    parser.add_argument(
        "--pomreport-workers",
        type=int,
        default=1,
        help="serve pomreport with --workers N (CPU counts the whole process tree)",
    )
    parser.add_argument(
        "--admin-url",
        default=DEFAULT_ADMIN_URL,
        help="database on the same server to run CREATE DATABASE from",
    )
    arguments = parser.parse_args()
    try:
        run(arguments)
    except BenchError as error:
        print(f"peers: {error}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
