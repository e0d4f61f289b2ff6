"""Benchmark the Callbacks Scheduled Details report on PostgreSQL: service latency vs its SQL floor.

Usage:
    .venv/bin/python bench/report_latency.py [--database-url URL] [--requests 200] [--warmup 20]
        [--in-process-requests 100] [--profile-requests 30]
        [--seed-if-missing [--seed-callbacks 1000000] [--admin-url URL]]

The database (default postgresql://postgres@127.0.0.1:5432/seedbench) must hold seeded callbacks
created in the last 7 days, e.g. from `pomreport seed --callbacks 1000000 --seed 1`; when it is
missing or empty the script says how to make it, or makes it with --seed-if-missing (CREATE
DATABASE through --admin-url, then `pomreport migrate` and `pomreport seed --callbacks N --seed 1`
as of the current hour).

The request is the report for `timePeriod: {lastDays: 7}` and `filters: {agentId: ...}` (the
agent with most callbacks in that period), with `totalRecords` and `rows(first: 100)` selecting
every Callback field and nested object (FULL_ROW of the report's tests). Each measure follows a
warm-up and checks every response (no errors, a full first page):

1. the service: `pomreport serve` in a child process, N requests over loopback HTTP (httpx,
   one at a time);
2. the floor: the SQL statements one such request runs (captured in-process from SQLAlchemy's
   `before_cursor_execute`), replayed N times through asyncpg on one connection, one after
   another (the service runs its loader statements concurrently); also the floor with the
   transactions the service wraps each statement in (pool pre-ping, BEGIN ... ROLLBACK), and
   graphql-core alone executing the query over the response's own data (no SQL, no Strawberry);
3. where the time goes: the report in-process (ASGI, no HTTP) timed with the event loop's idle
   time and the garbage collector's time, then under cProfile; and the transactions per request
   as PostgreSQL counts them (pg_stat_database).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import dataclasses
import datetime as dt
import gc
import json
import os
import re
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from graphql import build_schema, execute_sync, parse, validate
from sqlalchemy import event
from sqlalchemy.engine import URL
from starlette.applications import Starlette
from starlette.testclient import TestClient

from service.app import create_app
from service.reports.time_periods import resolve_time_period
from service.schema import create_schema
from service.settings import Settings, parse_database_url

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/seedbench"
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
REPOSITORY = Path(__file__).resolve().parent.parent
PAGE_SIZE = 100
LAST_DAYS = 7

# The field list of FULL_ROW in tests/reports/test_callbacks_scheduled_details.py.
REPORT_QUERY = """
query Full($agentId: String!, $first: Int!) {
  callbacksScheduledDetails(timePeriod: {lastDays: 7}, filters: {agentId: $agentId}) {
    totalRecords
    rows(first: $first) {
      edges { cursor node {
        id callbackId callbackType campaignName campaignDisplayName jobId creatorAgentId createdFor
        contactId creationTime scheduledStartTime scheduledEndTime callbackStatus servicedByAgentId
        interactionAttemptTime customCompletionCode systemCompletionCode callId createdForAgentId
        campaign { id name displayName campaignType strategyName maxAttempts state endTime }
        job { id jobId startTime endTime state }
        creatorAgent { id agentId name }
        createdForAgent { agentId name }
        servicedByAgent { id agentId name }
        contact { id contactId firstName lastName phoneNumber email timeZone excluded }
        attempts { id attemptTime agentId customCompletionCode systemCompletionCode dummy }
      } }
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    }
  }
}
"""


class BenchError(Exception):
    """Ends the benchmark with a message."""


@dataclass(frozen=True, slots=True)
class Statement:
    """One SQL statement as asyncpg receives it, and the rows it must return."""

    sql: str
    parameters: tuple[Any, ...]
    expected_rows: int | None

    @property
    def label(self) -> str:
        table = re.search(r"\bFROM (\w+)( JOIN (\w+))?", self.sql)
        name = "?" if table is None else "+".join(t for t in (table[1], table[3]) if t)
        if re.match(r"SELECT count\(", self.sql):
            return f"count {name}"
        if " IN (" in self.sql:
            return f"{name} IN ({len(self.parameters)} keys)"
        return f"page {name}"


@dataclass(frozen=True, slots=True)
class Summary:
    median: float
    p90: float
    p99: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Summary:
        """Median, p90 and p99 in milliseconds."""
        milliseconds = [s * 1000 for s in seconds]
        cuts = statistics.quantiles(milliseconds, n=100, method="inclusive")
        return cls(statistics.median(milliseconds), cuts[89], cuts[98])


# --- the database -------------------------------------------------------------------------------


def asyncpg_dsn(url: URL) -> str:
    """The URL asyncpg.connect takes: no +asyncpg driver suffix."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def _callback_count(dsn: str) -> int | None:
    """Callbacks in the database; None when the database does not exist."""
    try:
        connection = await asyncpg.connect(dsn)
    except asyncpg.InvalidCatalogNameError:
        return None
    try:
        if await connection.fetchval("SELECT to_regclass('public.callback')") is None:
            return 0
        return int(await connection.fetchval("SELECT count(*) FROM callback"))
    finally:
        await connection.close()


async def _create_database(admin_dsn: str, name: str) -> None:
    connection = await asyncpg.connect(admin_dsn)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


def pomreport_command() -> list[str]:
    """`pomreport` from this interpreter's environment."""
    script = Path(sys.executable).parent / "pomreport"
    return [str(script)] if script.exists() else [sys.executable, "-m", "service.cli"]


def ensure_seeded(raw_url: str, admin_url: str, seed_if_missing: bool, callbacks: int) -> int:
    """The database's callback count; create, migrate and seed it first if asked and needed."""
    url = parse_database_url(raw_url)
    count = asyncio.run(_callback_count(asyncpg_dsn(url)))
    if count:
        return count
    state = "does not exist" if count is None else "holds no callbacks"
    environment = f"DATABASE_URL={raw_url}"
    if not seed_if_missing:
        create = f"createdb -h {url.host or '127.0.0.1'} -U {url.username or 'postgres'} "
        raise BenchError(
            f"the database {url.database} {state}. Create and seed it with\n"
            + (f"  {create}{url.database}\n" if count is None else "")
            + f"  {environment} .venv/bin/pomreport migrate\n"
            f"  {environment} .venv/bin/pomreport seed --callbacks {callbacks} --seed 1\n"
            "(about a minute for 1000000 callbacks), or rerun with --seed-if-missing."
        )
    if count is None:
        print(f"creating database {url.database} through {admin_url}", file=sys.stderr)
        asyncio.run(_create_database(asyncpg_dsn(parse_database_url(admin_url)), str(url.database)))
    child_environment = dict(os.environ, DATABASE_URL=raw_url)
    for arguments in (["migrate"], ["seed", "--callbacks", str(callbacks), "--seed", "1"]):
        print(f"running pomreport {' '.join(arguments)}", file=sys.stderr)
        subprocess.run(
            pomreport_command() + arguments, env=child_environment, cwd=REPOSITORY, check=True
        )
    count = asyncio.run(_callback_count(asyncpg_dsn(url)))
    if not count:
        raise BenchError(f"seeding {url.database} left it without callbacks")
    return count


async def _busiest_agent(dsn: str, settings: Settings) -> tuple[str, int]:
    """The creator agent with most callbacks in the report's `lastDays: 7` period."""
    period = resolve_time_period(
        last_days=LAST_DAYS,
        default_time_zone=settings.report_time_zone,
        now=dt.datetime.now(dt.UTC),
    )
    connection = await asyncpg.connect(dsn)
    try:
        row = await connection.fetchrow(
            "SELECT creator_agent_id, count(*) FROM callback"
            " WHERE created_at >= $1 AND created_at < $2"
            " GROUP BY creator_agent_id ORDER BY count(*) DESC, creator_agent_id LIMIT 1",
            period.start,
            period.end,
        )
        newest = await connection.fetchval("SELECT max(created_at) FROM callback")
    finally:
        await connection.close()
    if row is None:
        raise BenchError(
            f"no callbacks created in the last {LAST_DAYS} days (newest: {newest}); seed the "
            "database again with a recent --as-of"
        )
    return str(row[0]), int(row[1])


async def _transaction_count(dsn: str) -> int:
    """Transactions PostgreSQL has counted for the database so far."""
    connection = await asyncpg.connect(dsn)
    try:
        value = await connection.fetchval(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database"
            " WHERE datname = current_database()"
        )
    finally:
        await connection.close()
    return int(value)


# --- the request and its checks -----------------------------------------------------------------


def check_report(body: Any, rows: int | None) -> dict[str, Any]:
    """The report of a response that has no errors and the expected number of rows
    (None: the first page of totalRecords)."""
    if not isinstance(body, dict) or body.get("errors") or not body.get("data"):
        raise BenchError(f"the report failed: {str(body)[:500]}")
    report: dict[str, Any] = body["data"]["callbacksScheduledDetails"]
    edges = report["rows"]["edges"]
    if rows is None:
        rows = min(int(report["totalRecords"]), PAGE_SIZE)
    if len(edges) != rows:
        raise BenchError(f"the report returned {len(edges)} rows, expected {rows}")
    return report


def expected_rows(sql: str, report: dict[str, Any]) -> int | None:
    """How many rows a statement of the request must return, judged from the response."""
    nodes = [edge["node"] for edge in report["rows"]["edges"]]
    total = int(report["totalRecords"])
    if re.match(r"SELECT count\(", sql):
        return 1
    if re.search(r"\bFROM callback JOIN campaign\b", sql):
        return min(total, PAGE_SIZE + 1)  # the page and one row to know there is a next page
    if re.search(r"\bFROM job\b", sql):
        return len({node["jobId"] for node in nodes})
    if re.search(r"\bFROM agent\b", sql):
        fields = ("creatorAgentId", "createdForAgentId", "servicedByAgentId")
        return len({node[f] for node in nodes for f in fields if node[f] is not None})
    if re.search(r"\bFROM contact\b", sql):
        return len({node["contactId"] for node in nodes})
    if re.search(r"\bFROM callback_attempt\b", sql):
        return sum(len(node["attempts"]) for node in nodes)
    return None


def to_asyncpg(sql: str, parameters: Any) -> tuple[str, tuple[Any, ...]]:
    """A statement and its parameters as asyncpg takes them ($1..$n, positional).

    SQLAlchemy 2.1's asyncpg dialect already hands the cursor `numeric_dollar` statements;
    older ones pass `%s` (format) and convert in the cursor, which this repeats.
    """
    if isinstance(parameters, dict):
        names: list[str] = []

        def number(match: re.Match[str]) -> str:
            names.append(match[1])
            return f"${len(names)}"

        sql = re.sub(r"%\((\w+)\)s", number, sql)
        return sql, tuple(parameters[name] for name in names)
    values = tuple(parameters or ())
    if "%s" in sql:
        counter = iter(range(1, len(values) + 1))
        sql = re.sub(r"%s", lambda _match: f"${next(counter)}", sql)
    return sql.replace("%%", "%"), values


def capture_statements(
    settings: Settings, variables: dict[str, Any]
) -> tuple[list[Statement], dict[str, Any]]:
    """Run the request in-process once; the statements as asyncpg receives them, and the
    response's data."""
    recorded: list[tuple[str, Any]] = []

    def record(
        _connection: Any, _cursor: Any, sql: str, parameters: Any, _context: Any, _many: bool
    ) -> None:
        recorded.append((sql, parameters))

    app = create_app(settings)
    with TestClient(app) as client:
        client.post("/graphql", json={"query": REPORT_QUERY, "variables": variables})  # warm
        event.listen(app.state.engine.sync_engine, "before_cursor_execute", record)
        body = client.post("/graphql", json={"query": REPORT_QUERY, "variables": variables}).json()
        event.remove(app.state.engine.sync_engine, "before_cursor_execute", record)
    report = check_report(body, None)
    statements = []
    for sql, parameters in recorded:
        converted, values = to_asyncpg(sql, parameters)
        statements.append(Statement(converted, values, expected_rows(sql, report)))
    data: dict[str, Any] = body["data"]
    return statements, data


# --- 1. the service over HTTP -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def serving_child(raw_url: str) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """`pomreport serve` on raw_url in a child process, ready (its /readyz answers): its port
    and process; stopped when the block ends."""
    port = free_port()
    # No expiry sweeps: a sweep's UPDATE would land among the measured requests.
    environment = dict(os.environ, DATABASE_URL=raw_url, POMREPORT_EXPIRY_SWEEP_SECONDS="0")
    with tempfile.TemporaryFile("w+") as log:
        server = subprocess.Popen(
            [*pomreport_command(), "serve", "--port", str(port)],
            env=environment,
            cwd=REPOSITORY,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
                _wait_ready(client, server, log)
            yield port, server
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def bench_service(
    raw_url: str, variables: dict[str, Any], rows: int, warmup: int, requests: int
) -> list[float]:
    """Seconds per request to a `pomreport serve` child process, over loopback HTTP."""
    payload = {"query": REPORT_QUERY, "variables": variables}
    with (
        serving_child(raw_url) as (port, _server),
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client,
    ):
        for _ in range(warmup):
            check_report(client.post("/graphql", json=payload).json(), rows)
        seconds: list[float] = []
        bodies: list[bytes] = []
        for _ in range(requests):
            started = time.perf_counter()
            response = client.post("/graphql", json=payload)
            seconds.append(time.perf_counter() - started)
            bodies.append(response.content)
    for body in bodies:
        check_report(httpx.Response(200, content=body).json(), rows)
    return seconds


def _wait_ready(client: httpx.Client, server: subprocess.Popen[bytes], log: Any) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            log.seek(0)
            raise BenchError(f"pomreport serve exited ({server.returncode}):\n{log.read()[-2000:]}")
        try:
            if client.get("/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise BenchError("pomreport serve was not ready within 60 s")


# --- 2. the floor: the statements through asyncpg -----------------------------------------------


@dataclass(frozen=True, slots=True)
class FloorResult:
    per_request: list[float]
    per_statement: list[list[float]]
    with_transactions: list[float]


async def bench_floor(
    dsn: str, statements: Sequence[Statement], warmup: int, requests: int
) -> FloorResult:
    """Replay the statements sequentially on one connection; then again, each wrapped in the
    transactions SQLAlchemy's asyncpg adapter runs around a statement in a session of its own:
    pool_pre_ping on checkout (BEGIN; ";"; ROLLBACK), BEGIN before it, ROLLBACK on close."""
    connection = await asyncpg.connect(dsn)
    try:
        for statement in statements:
            rows = await connection.fetch(statement.sql, *statement.parameters)
            if statement.expected_rows is not None and len(rows) != statement.expected_rows:
                raise BenchError(
                    f"replayed {statement.label} returned {len(rows)} rows, the service's "
                    f"response implies {statement.expected_rows}"
                )
        per_statement: list[list[float]] = [[] for _ in statements]
        per_request: list[float] = []
        for iteration in range(warmup + requests):
            total = 0.0
            for index, statement in enumerate(statements):
                started = time.perf_counter()
                await connection.fetch(statement.sql, *statement.parameters)
                took = time.perf_counter() - started
                total += took
                if iteration >= warmup:
                    per_statement[index].append(took)
            if iteration >= warmup:
                per_request.append(total)
        with_transactions: list[float] = []
        for iteration in range(warmup + requests):
            started = time.perf_counter()
            for statement in statements:
                await connection.execute("BEGIN;")  # pool_pre_ping
                await connection.fetchrow(";")
                await connection.execute("ROLLBACK;")
                await connection.execute("BEGIN;")  # the session
                await connection.fetch(statement.sql, *statement.parameters)
                await connection.execute("ROLLBACK;")
            if iteration >= warmup:
                with_transactions.append(time.perf_counter() - started)
    finally:
        await connection.close()
    return FloorResult(per_request, per_statement, with_transactions)


def bench_graphql_floor(
    data: dict[str, Any], variables: dict[str, Any], warmup: int, requests: int
) -> list[float]:
    """graphql-core alone: parse, validate, execute and JSON-encode the same query over the
    response's own data as plain dicts (default resolvers; no SQL, no Strawberry, no ORM)."""
    schema = build_schema(create_schema().as_str())
    seconds: list[float] = []
    for iteration in range(warmup + requests):
        started = time.perf_counter()
        document = parse(REPORT_QUERY)
        if errors := validate(schema, document):
            raise BenchError(f"the query does not validate: {errors}")
        result = execute_sync(schema, document, root_value=data, variable_values=variables)
        json.dumps({"data": result.data})
        took = time.perf_counter() - started
        if result.errors or result.data != data:
            raise BenchError(f"graphql-core alone gave another result: {result.errors}")
        if iteration >= warmup:
            seconds.append(took)
    return seconds


def cpu_check(rounds: int = 100) -> Summary:
    """A fixed piece of Python work, timed: how steady the CPU is while the benchmark runs."""
    seconds: list[float] = []
    for _ in range(rounds):
        started = time.perf_counter()
        sum(i * i for i in range(100_000))
        seconds.append(time.perf_counter() - started)
    return Summary.of(seconds)


# --- 3. where the time goes ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InProcessResult:
    seconds: list[float]
    idle_seconds: float  # the event loop blocked in epoll: waiting for PostgreSQL
    gc_seconds: float
    profile: cProfile.Profile
    profiled_requests: int
    profiled_seconds: float
    transactions_per_request: float


class TimedSelector(selectors.DefaultSelector):
    """The event loop's selector, adding up the time the loop sits idle waiting for I/O."""

    def __init__(self) -> None:
        super().__init__()
        self.blocked = 0.0

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        started = time.perf_counter()
        try:
            return super().select(timeout)
        finally:
            self.blocked += time.perf_counter() - started


class GcTimer:
    """Adds up the time the garbage collector runs, while installed."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0

    def __call__(self, phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started


async def _in_process(
    settings: Settings,
    variables: dict[str, Any],
    rows: int,
    warmup: int,
    requests: int,
    profiled_requests: int,
    selector: TimedSelector,
) -> InProcessResult:
    app: Starlette = create_app(settings)
    payload = {"query": REPORT_QUERY, "variables": variables}
    profiler = cProfile.Profile()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://in-process") as client:
            for _ in range(warmup):
                check_report((await client.post("/graphql", json=payload)).json(), rows)
            seconds: list[float] = []
            responses: list[httpx.Response] = []
            idle_before = selector.blocked
            gc_timer = GcTimer()
            gc.callbacks.append(gc_timer)
            try:
                for _ in range(requests):
                    started = time.perf_counter()
                    responses.append(await client.post("/graphql", json=payload))
                    seconds.append(time.perf_counter() - started)
            finally:
                gc.callbacks.remove(gc_timer)
            idle = selector.blocked - idle_before
            for response in responses:
                check_report(response.json(), rows)
            started = time.perf_counter()
            profiler.enable()
            for _ in range(profiled_requests):
                await client.post("/graphql", json=payload)
            profiler.disable()
            profiled = time.perf_counter() - started
    return InProcessResult(
        seconds, idle, gc_timer.seconds, profiler, profiled_requests, profiled, 0.0
    )


def bench_in_process(
    settings: Settings,
    dsn: str,
    variables: dict[str, Any],
    rows: int,
    warmup: int,
    requests: int,
    profiled_requests: int,
) -> InProcessResult:
    """The report through the ASGI app in this process: timings, a profile, transactions."""
    before = asyncio.run(_transaction_count(dsn))
    selector = TimedSelector()
    with asyncio.Runner(loop_factory=lambda: asyncio.SelectorEventLoop(selector)) as runner:
        run = runner.run(
            _in_process(settings, variables, rows, warmup, requests, profiled_requests, selector)
        )
    # The engine is disposed: its backends have exited and flushed their statistics.
    time.sleep(1.0)
    after = asyncio.run(_transaction_count(dsn))
    made = warmup + requests + profiled_requests
    # Minus the first count's own transaction; connecting adds a few more, spread over `made`.
    return dataclasses.replace(run, transactions_per_request=(after - before - 1) / made)


Label = tuple[str, int, str]

CATEGORIES: list[tuple[str, str]] = [
    ("epoll", "waiting for PostgreSQL (event loop idle)"),
    ("/asyncpg/", "asyncpg driver (protocol, records)"),
    ("/sqlalchemy/orm/", "SQLAlchemy ORM (session, rows to objects)"),
    ("<sqlalchemy generated", "SQLAlchemy ORM (session, rows to objects)"),
    ("/sqlalchemy/", "SQLAlchemy core (compile, pool, execute, results)"),
    ("/graphql/", "GraphQL execution (graphql-core)"),
    ("/strawberry/", "Strawberry (resolver glue, types, result)"),
    ("/aiodataloader", "dataloaders (aiodataloader)"),
    ("/service/", "service code (resolvers, nodes, loaders)"),
    ("json", "JSON encoding/decoding"),
    ("/starlette/", "HTTP/ASGI (starlette, httpx in-process)"),
    ("/httpx/", "HTTP/ASGI (starlette, httpx in-process)"),
    ("/anyio/", "HTTP/ASGI (starlette, httpx in-process)"),
    ("/asyncio/", "asyncio event loop"),
]
OTHER = "other (stdlib, builtins)"


def category(label: Label) -> str:
    filename, _line, name = label
    where = f"{filename}:{name}"
    for needle, title in CATEGORIES:
        if needle in where:
            return title
    return OTHER


def self_time_by_category(
    stats: dict[Label, tuple[int, int, Any, Any, dict[Label, tuple[int, int, Any, Any]]]],
) -> dict[str, float]:
    """Self time per category; a builtin's time goes to its callers' categories."""
    totals: dict[str, float] = defaultdict(float)
    for label, (_cc, _nc, own, _cumulative, callers) in stats.items():
        kind = category(label)
        if label[0] == "~" and kind == OTHER and callers:
            edge_total = sum(float(edge[2]) for edge in callers.values()) or 1.0
            for caller, edge in callers.items():
                totals[category(caller)] += float(own) * float(edge[2]) / edge_total
        else:
            totals[kind] += float(own)
    return totals


WRAPPERS = (
    "/asyncio/",
    "bench/report_latency.py",
    "_contextvars.Context",
    "/contextlib.py",
    "greenlet",
)
TOP_FUNCTIONS = 12
PER_CATEGORY = 3


def describe(label: Label) -> str:
    filename, line, name = label
    if filename == "~":
        return name
    for marker in ("site-packages/", "/main/", "/lib/python3"):
        if marker in filename:
            filename = filename.split(marker, 1)[1]
            break
    return f"{filename}:{line}({name})"


# --- output -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--requests", type=int, default=200, help="measured requests (N)")
    parser.add_argument("--warmup", type=int, default=20, help="requests before measuring")
    parser.add_argument(
        "--in-process-requests", type=int, default=100, help="requests timed in-process"
    )
    parser.add_argument("--profile-requests", type=int, default=30, help="requests to profile")
    parser.add_argument(
        "--seed-if-missing",
        action="store_true",
        help="create, migrate and seed the database when it is missing or empty",
    )
    parser.add_argument("--seed-callbacks", type=int, default=1_000_000)
    parser.add_argument(
        "--admin-url",
        default=DEFAULT_ADMIN_URL,
        help="database on the same server to run CREATE DATABASE from",
    )
    arguments = parser.parse_args()
    try:
        run(arguments)
    except BenchError as error:
        print(f"report_latency: {error}", file=sys.stderr)
        raise SystemExit(1) from None


def run(arguments: argparse.Namespace) -> None:
    raw_url: str = arguments.database_url
    requests: int = arguments.requests
    warmup: int = arguments.warmup
    callbacks = ensure_seeded(
        raw_url, arguments.admin_url, arguments.seed_if_missing, arguments.seed_callbacks
    )
    # In-process runs use open development mode, as `serve` on loopback does (no API keys).
    settings = dataclasses.replace(
        Settings.from_environment(dict(os.environ, DATABASE_URL=raw_url)),
        open_without_keys=True,
        expiry_sweep_seconds=0,
    )
    dsn = asyncpg_dsn(settings.database_url)
    agent, agent_callbacks = asyncio.run(_busiest_agent(dsn, settings))
    rows = min(agent_callbacks, PAGE_SIZE)
    variables = {"agentId": agent, "first": PAGE_SIZE}
    print(
        f"database {settings.database_url.database}: {callbacks:,} callbacks; agent {agent} "
        f"created {agent_callbacks} in the last {LAST_DAYS} days, so a page holds {rows} rows",
        flush=True,
    )

    cpu_before = cpu_check()
    statements, data = capture_statements(settings, variables)
    print(f"captured {len(statements)} statements per request", flush=True)
    print(f"service: {warmup} warm-up + {requests} requests over HTTP ...", flush=True)
    service = Summary.of(bench_service(raw_url, variables, rows, warmup, requests))
    print(
        f"floor: {warmup} warm-up + {requests} sequential replays through asyncpg ...", flush=True
    )
    floor_result = asyncio.run(bench_floor(dsn, statements, warmup, requests))
    floor = Summary.of(floor_result.per_request)
    wrapped = Summary.of(floor_result.with_transactions)
    print(f"graphql-core alone: {warmup} warm-up + {requests} executions ...", flush=True)
    graphql_floor = Summary.of(bench_graphql_floor(data, variables, warmup, requests))
    local_requests: int = arguments.in_process_requests
    profiled: int = arguments.profile_requests
    print(
        f"in-process: {warmup} warm-up + {local_requests} timed + {profiled} profiled requests ...",
        flush=True,
    )
    in_process = bench_in_process(settings, dsn, variables, rows, warmup, local_requests, profiled)
    local = Summary.of(in_process.seconds)
    cpu_after = cpu_check()

    print()
    print(f"| measure ({requests} requests unless said) | median ms | p90 ms | p99 ms |")
    print("|---|---|---|---|")
    print(f"| service: pomreport serve, HTTP, concurrency 1 | {_ms(service)} |")
    print(f"| floor: the statements via asyncpg, one after another | {_ms(floor)} |")
    print(f"| floor + the service's transactions per statement | {_ms(wrapped)} |")
    print(f"| graphql-core alone over the response as dicts, no SQL | {_ms(graphql_floor)} |")
    print(f"| service in-process, ASGI without HTTP ({local_requests} requests) | {_ms(local)} |")
    print(f"| CPU check before: a fixed Python loop (100 runs) | {_ms(cpu_before)} |")
    print(f"| CPU check after: the same loop | {_ms(cpu_after)} |")
    print()
    print(
        f"service/floor: median {service.median / floor.median:.1f}x, "
        f"p99 {service.p99 / floor.p99:.1f}x; statements per request: {len(statements)}; "
        f"transactions per request (pg_stat_database): {in_process.transactions_per_request:.1f}"
    )
    print(
        "The service runs the loader statements (jobs, agents, contacts, attempts) concurrently "
        "on separate pooled connections; the floor runs them one after another on one "
        "connection. The 'floor + transactions' row adds what the service's session per "
        "statement costs: a pool pre-ping (BEGIN; ';'; ROLLBACK) and BEGIN ... ROLLBACK."
    )
    print()
    print("| statement | rows | floor median ms |")
    print("|---|---|---|")
    for statement, seconds in zip(statements, floor_result.per_statement, strict=True):
        rows_text = "?" if statement.expected_rows is None else str(statement.expected_rows)
        print(f"| {statement.label} | {rows_text} | {statistics.median(seconds) * 1000:.2f} |")

    mean = statistics.mean(in_process.seconds) * 1000
    idle = in_process.idle_seconds * 1000 / local_requests
    collecting = in_process.gc_seconds * 1000 / local_requests
    print()
    print(
        f"In-process without a profiler, a request takes {mean:.1f} ms on average: the event loop "
        f"sat idle waiting for PostgreSQL {idle:.1f} ms ({idle / mean:.0%}), the garbage "
        f"collector ran {collecting:.1f} ms ({collecting / mean:.0%}), and Python ran the "
        f"remaining {mean - idle - collecting:.1f} ms ({(mean - idle - collecting) / mean:.0%})."
    )
    print_profile(in_process)


def _ms(summary: Summary) -> str:
    return f"{summary.median:.1f} | {summary.p90:.1f} | {summary.p99:.1f}"


def print_profile(result: InProcessResult) -> None:
    result.profile.create_stats()
    stats = result.profile.stats
    count = result.profiled_requests
    by_category = self_time_by_category(stats)
    total = sum(by_category.values())
    print()
    profiled_ms = result.profiled_seconds * 1000 / count
    plain_ms = statistics.mean(result.seconds) * 1000
    print(
        f"Where the time goes: {count} requests in-process under cProfile, {profiled_ms:.0f} ms "
        f"each against {plain_ms:.0f} ms unprofiled (cProfile slows Python calls most, so "
        "shares of Python code are overstated and waits understated). Self time by category, "
        "a builtin's time charged to its callers:"
    )
    print()
    print("| category | ms/request | share |")
    print("|---|---|---|")
    for name, seconds in sorted(by_category.items(), key=lambda item: -item[1]):
        print(f"| {name} | {seconds * 1000 / count:.1f} | {seconds / total:.0%} |")
    counted = {"GraphQL fields executed": 0, "asyncio tasks created": 0, "async resolvers": 0}
    for (filename, _line, name), (_cc, calls, *_rest) in stats.items():
        if name == "execute_field" and "/graphql/execution/" in filename:
            counted["GraphQL fields executed"] += calls
        elif name == "create_task" and filename.endswith("asyncio/base_events.py"):
            counted["asyncio tasks created"] += calls
        elif name == "_async_resolver" and "/strawberry/" in filename:
            counted["async resolvers"] += calls
    print()
    print("Per request: " + ", ".join(f"{n // count:,} {what}" for what, n in counted.items()))
    print()
    print(
        f"Top {TOP_FUNCTIONS} functions by cumulative time, at most {PER_CATEGORY} per category, "
        "categories by self time (asyncio, contextvars and greenlet wrappers left out: cProfile "
        "charges a greenlet switch with the other greenlet's time):"
    )
    print()
    print("| category | function | cumulative ms/request | self ms/request |")
    print("|---|---|---|---|")
    grouped: dict[str, list[tuple[Label, float, float]]] = defaultdict(list)
    for label, (_cc, _nc, own, cumulative, _callers) in stats.items():
        if not any(wrapper in f"{label[0]}:{label[2]}" for wrapper in WRAPPERS):
            grouped[category(label)].append((label, float(cumulative), float(own)))
    shown = 0
    for name, _seconds in sorted(by_category.items(), key=lambda item: -item[1]):
        functions = sorted(grouped[name], key=lambda function: -function[1])
        for function, cumulative_seconds, own_seconds in functions[:PER_CATEGORY]:
            if shown == TOP_FUNCTIONS:
                return
            print(
                f"| {name} | `{describe(function)}` | {cumulative_seconds * 1000 / count:.1f} "
                f"| {own_seconds * 1000 / count:.1f} |"
            )
            shown += 1


if __name__ == "__main__":
    main()
