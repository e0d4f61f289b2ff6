"""The report scenarios and two summaries on databases of different sizes, side by side.

Usage:
    .venv/bin/python bench/scale.py --database 1M=postgresql://postgres@127.0.0.1:5432/scale1m \
        --database 10M=postgresql://postgres@127.0.0.1:5432/scale10m \
        [--requests 30] [--rounds 4] [--warmup 10] [--kinds a,b,c,s7,s30] \
        [--floor-requests 20] [--floor-warmup 3] \
        [--as-of 2026-11-29T03:00Z] [--json bench/scale-results.json] [--explain-dir DIR]

Each database is seeded with the same `pomreport seed --seed 1 --as-of ...` and a different
--callbacks. The seed spreads callbacks over the same 90 days before --as-of whatever their
number, so a 7- or 30-day period of a 10M database holds ten times the rows of a 1M one: the
page (first 100 or 500 by creation time) should cost the same, the count grow with the rows.

Requests (bench/peers' scenarios, and two summaries over the same periods):

    a:   the report, the busiest creator agent of the 7 days, first 100 rows
    b:   the report, all agents, 7 days, first 100 rows
    c:   the report, all agents, 30 days, first 500 rows
    s7:  callbacksScheduledSummary, 7 days, groupBy [CALLBACK_STATUS]
    s30: callbacksScheduledSummary, 30 days, groupBy [CAMPAIGN, CREATION_HOUR]

One `pomreport serve` per database (child processes, loopback, expiry sweeper off). Per
request kind, after a warm-up, --rounds rounds of --requests sequential requests to each server,
the order of the servers alternating every round, so both meet the same noise on this shared
machine: p50 / p90 at the client, and the server's CPU per request from /proc. Every answer
is checked (no errors; a report's page holds min(total, first) rows).

Then the SQL floor of each kind and database: the statements one request runs, captured
in-process from SQLAlchemy's `before_cursor_execute` (as bench/peers does), each replayed
--floor-requests times after --floor-warmup through asyncpg on one connection (median per
statement), and once under EXPLAIN (ANALYZE, BUFFERS), whose planning and execution times, top
node and buffers are kept; the plans' text goes to --explain-dir. Also the database's size and
its largest tables and indexes. Prints markdown tables and writes everything to --json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "peers"))

import peers  # noqa: E402  (bench/peers/peers.py, found through the path above)
from report_latency import BenchError, Statement, asyncpg_dsn, cpu_check  # noqa: E402

from service.settings import Settings, parse_database_url  # noqa: E402

REPOSITORY = HERE.parent
DEFAULT_JSON = HERE / "scale-results.json"

SUMMARY_QUERY = """
query Summary($timePeriod: TimePeriodInput!, $groupBy: [SummaryDimension!]!) {
  callbacksScheduledSummary(timePeriod: $timePeriod, groupBy: $groupBy) {
    totalRecords
    groups { count callbackStatus campaignName creationHour }
  }
}
"""


@dataclass(frozen=True, slots=True)
class SummaryKind:
    name: str
    days: int
    group_by: tuple[str, ...]

    @property
    def title(self) -> str:
        return f"{self.name}: summary, {self.days} days, by {', '.join(self.group_by)}"


SUMMARIES = {
    "s7": SummaryKind("s7", 7, ("CALLBACK_STATUS",)),
    "s30": SummaryKind("s30", 30, ("CAMPAIGN", "CREATION_HOUR")),
}


@dataclass(frozen=True, slots=True)
class Request:
    """One kind of request resolved against one database."""

    kind: str
    title: str
    payload: dict[str, Any]
    first: int | None  # a report's page size; None for a summary


def _summary_request(kind: SummaryKind, as_of: dt.datetime) -> Request:
    start = as_of - dt.timedelta(days=kind.days)
    payload = {
        "query": SUMMARY_QUERY,
        "variables": {
            "timePeriod": {"from": start.isoformat(), "to": as_of.isoformat()},
            "groupBy": list(kind.group_by),
        },
    }
    return Request(kind.name, kind.title, payload, None)


def resolve(dsn: str, kinds: Sequence[str], as_of: dt.datetime) -> dict[str, Request]:
    """Each kind's request on this database (scenario a's busiest agent is the database's)."""
    scenarios = [peers.SCENARIOS[kind] for kind in kinds if kind in peers.SCENARIOS]
    reports = {r.scenario.name: r for r in asyncio.run(peers._resolve(dsn, scenarios, as_of))}
    requests = {}
    for kind in kinds:
        if kind in reports:
            report = reports[kind]
            requests[kind] = Request(
                kind, report.title, report.payload(peers.POMREPORT), report.scenario.first
            )
        else:
            requests[kind] = _summary_request(SUMMARIES[kind], as_of)
    return requests


def check_answer(request: Request, body: Any) -> int:
    """The answer's total records, once it is known to be complete and error-free."""
    if not isinstance(body, dict) or body.get("errors") or not body.get("data"):
        raise BenchError(f"{request.title} answered with errors: {json.dumps(body)[:800]}")
    if request.first is None:
        summary = body["data"]["callbacksScheduledSummary"]
        total = int(summary["totalRecords"])
        if sum(group["count"] for group in summary["groups"]) != total:
            raise BenchError(f"{request.title}: the groups do not add up to {total}")
        return total
    total, rows = peers.pomreport_rows(body)
    total = int(total)
    if len(rows) != min(total, request.first):
        raise BenchError(f"{request.title}: {len(rows)} rows of {total}, page {request.first}")
    return total


# --- the database -------------------------------------------------------------------------------


async def database_facts(dsn: str) -> dict[str, Any]:
    """Rows, the database's size, and its largest tables and indexes."""
    connection = await asyncpg.connect(dsn)
    try:
        relations = await connection.fetch(
            "SELECT c.relname, c.relkind, pg_relation_size(c.oid) AS bytes"
            " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'i')"
            " ORDER BY bytes DESC LIMIT 20"
        )
        return {
            "callbacks": await connection.fetchval("SELECT count(*) FROM callback"),
            "attempts": await connection.fetchval("SELECT count(*) FROM callback_attempt"),
            "database_bytes": await connection.fetchval(
                "SELECT pg_database_size(current_database())"
            ),
            "tables_bytes": {
                table: await connection.fetchval("SELECT pg_table_size($1::regclass)", table)
                for table in ("callback", "callback_attempt", "contact")
            },
            "indexes_bytes": {
                table: await connection.fetchval("SELECT pg_indexes_size($1::regclass)", table)
                for table in ("callback", "callback_attempt", "contact")
            },
            "largest_relations": [
                {"name": r["relname"], "kind": r["relkind"], "bytes": r["bytes"]} for r in relations
            ],
            "postgresql": await connection.fetchval("SHOW server_version"),
        }
    finally:
        await connection.close()


# --- the SQL floor and the plans ----------------------------------------------------------------


def _buffers(plan: dict[str, Any]) -> dict[str, int]:
    return {
        key: int(plan.get(key, 0))
        for key in ("Shared Hit Blocks", "Shared Read Blocks", "Temp Read Blocks")
    }


def _label(statement: Statement) -> str:
    if re.match(r"SELECT count\(", statement.sql):
        return "count"
    if "GROUP BY" in statement.sql:
        return "summary"
    if statement.sql.startswith("SELECT page."):
        return "page"
    return statement.label


async def floor_and_plans(
    dsn: str,
    statements: list[Statement],
    warmup: int,
    requests: int,
    *,
    search_path: str | None = None,
) -> list[dict[str, Any]]:
    """Each statement's replayed median and its EXPLAIN (ANALYZE, BUFFERS); with
    `search_path`, the statements' unqualified tables are looked up there first."""
    connection = await asyncpg.connect(dsn)
    try:
        if search_path is not None:
            await connection.execute(f"SET search_path = {search_path}")
        measured = []
        for statement in statements:
            rows = len(await connection.fetch(statement.sql, *statement.parameters))
            seconds = []
            for iteration in range(warmup + requests):
                started = time.perf_counter()
                await connection.fetch(statement.sql, *statement.parameters)
                if iteration >= warmup:
                    seconds.append(time.perf_counter() - started)
            explained = await connection.fetchval(
                "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement.sql, *statement.parameters
            )
            text = await connection.fetch(
                "EXPLAIN (ANALYZE, BUFFERS) " + statement.sql, *statement.parameters
            )
            document = (json.loads(explained) if isinstance(explained, str) else explained)[0]
            plan = document["Plan"]
            measured.append(
                {
                    "label": _label(statement),
                    "rows": rows,
                    "median_ms": 1000 * statistics.median(seconds),
                    "planning_ms": document.get("Planning Time"),
                    "execution_ms": document.get("Execution Time"),
                    "top_node": plan["Node Type"],
                    "buffers": _buffers(plan),
                    "plan_text": "\n".join(row[0] for row in text),
                    "sql": statement.sql,
                    "parameters": [str(p) for p in statement.parameters],
                }
            )
        return measured
    finally:
        await connection.close()


# --- the service --------------------------------------------------------------------------------


@dataclass(slots=True)
class Samples:
    latencies_ms: list[float] = field(default_factory=list)
    cpu_seconds: float = 0.0

    def figures(self) -> dict[str, float]:
        cuts = statistics.quantiles(self.latencies_ms, n=10, method="inclusive")
        return {
            "requests": len(self.latencies_ms),
            "p50_ms": statistics.median(self.latencies_ms),
            "p90_ms": cuts[8],
            "cpu_ms_per_request": 1000 * self.cpu_seconds / len(self.latencies_ms),
        }


def measure(
    server: peers.Server, client: httpx.Client, request: Request, count: int, into: Samples
) -> None:
    before = peers.tree_cpu_seconds(server.process.pid)
    for _ in range(count):
        started = time.perf_counter()
        response = client.post(server.url, json=request.payload)
        into.latencies_ms.append(1000 * (time.perf_counter() - started))
        if response.status_code != 200:
            raise BenchError(f"{request.title}: HTTP {response.status_code} {response.text[:300]}")
    into.cpu_seconds += peers.tree_cpu_seconds(server.process.pid) - before


def _git(*arguments: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPOSITORY), *arguments], capture_output=True, text=True, check=True
    ).stdout.strip()


def run(arguments: argparse.Namespace) -> dict[str, Any]:
    as_of = dt.datetime.fromisoformat(arguments.as_of.replace("Z", "+00:00")).astimezone(dt.UTC)
    kinds = [kind.strip() for kind in arguments.kinds.split(",") if kind.strip()]
    if unknown := [k for k in kinds if k not in peers.SCENARIOS and k not in SUMMARIES]:
        raise BenchError(f"unknown kind(s) {', '.join(unknown)}")
    databases: dict[str, str] = {}
    for item in arguments.database:
        name, _, url = item.partition("=")
        databases[name] = url
    dsns = {name: asyncpg_dsn(parse_database_url(url)) for name, url in databases.items()}
    result: dict[str, Any] = {
        "commit": _git("rev-parse", "HEAD"),
        "dirty": bool(_git("status", "--porcelain", "--", "service", "bench")),
        "as_of": as_of.isoformat(),
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "arguments": vars(arguments),
        "cpu_check_before_ms": dataclasses.asdict(cpu_check()),
        "databases": {},
        "requests": {},
    }
    for name, dsn in dsns.items():
        print(f"{name}: sizes ...", flush=True)
        result["databases"][name] = asyncio.run(database_facts(dsn))
    requests = {name: resolve(dsn, kinds, as_of) for name, dsn in dsns.items()}
    for kind in kinds:
        result["requests"][kind] = {"title": requests[next(iter(dsns))][kind].title, "by": {}}

    # The floor and the plans first, each database's statements alone on the machine.
    for name, url in databases.items():
        settings = dataclasses.replace(
            Settings.from_environment(
                dict(os.environ, DATABASE_URL=url, POMREPORT_EXPIRY_SWEEP_SECONDS="0")
            ),
            open_without_keys=True,
        )
        for kind in kinds:
            print(f"{name} {kind}: SQL floor and plans ...", flush=True)
            statements = peers.capture_statements(settings, requests[name][kind].payload)
            result["requests"][kind]["by"][name] = {
                "title": requests[name][kind].title,
                "statements": asyncio.run(
                    floor_and_plans(
                        dsns[name], statements, arguments.floor_warmup, arguments.floor_requests
                    )
                ),
            }

    samples = {(kind, name): Samples() for kind in kinds for name in databases}
    with contextlib.ExitStack() as stack:
        servers = {
            name: stack.enter_context(peers.start_pomreport(url)) for name, url in databases.items()
        }
        client = stack.enter_context(httpx.Client(timeout=120))
        for kind in kinds:
            for name, server in servers.items():
                request = requests[name][kind]
                total = check_answer(request, client.post(server.url, json=request.payload).json())
                result["requests"][kind]["by"][name]["total_records"] = total
                print(f"{name} {request.title}: total {total:,}; warming up", flush=True)
                measure(server, client, request, arguments.warmup, Samples())
            names = list(databases)
            for round_number in range(arguments.rounds):
                order = names if round_number % 2 == 0 else names[::-1]
                for name in order:
                    measure(
                        servers[name],
                        client,
                        requests[name][kind],
                        arguments.requests,
                        samples[(kind, name)],
                    )
            for name in names:
                result["requests"][kind]["by"][name]["service"] = samples[(kind, name)].figures()
                figures = result["requests"][kind]["by"][name]["service"]
                print(
                    f"{name} {kind}: p50 {figures['p50_ms']:.1f} ms, "
                    f"CPU {figures['cpu_ms_per_request']:.1f} ms/request",
                    flush=True,
                )
    result["cpu_check_after_ms"] = dataclasses.asdict(cpu_check())
    result["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return result


def print_tables(result: dict[str, Any]) -> None:
    names = list(result["databases"])
    print("\n| database | callbacks | attempts | database size | callback table + indexes |")
    print("|---|---|---|---|---|")
    for name, facts in result["databases"].items():
        gib = 1024**3
        print(
            f"| {name} | {facts['callbacks']:,} | {facts['attempts']:,} | "
            f"{facts['database_bytes'] / gib:.2f} GiB | "
            f"{facts['tables_bytes']['callback'] / gib:.2f} + "
            f"{facts['indexes_bytes']['callback'] / gib:.2f} GiB |"
        )
    print(
        "\n| request | database | total | p50 ms | p90 ms | server CPU ms/request | "
        "statements: floor median ms (planning + execution ms) |"
    )
    print("|---|---|---|---|---|---|---|")
    for item in result["requests"].values():
        for name in names:
            entry = item["by"][name]
            service = entry["service"]
            statements = "; ".join(
                f"{s['label']} {s['median_ms']:.2f} ({s['planning_ms']:.2f} + "
                f"{s['execution_ms']:.2f})"
                for s in entry["statements"]
            )
            print(
                f"| {entry['title']} | {name} | {entry['total_records']:,} | "
                f"{service['p50_ms']:.1f} | {service['p90_ms']:.1f} | "
                f"{service['cpu_ms_per_request']:.1f} | {statements} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--database", action="append", required=True, help="NAME=URL, once per database"
    )
    parser.add_argument("--kinds", default="a,b,c,s7,s30")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--floor-requests", type=int, default=20, help="replays per statement")
    parser.add_argument("--floor-warmup", type=int, default=3)
    parser.add_argument("--as-of", default=peers.DEFAULT_AS_OF)
    parser.add_argument("--json", default=str(DEFAULT_JSON))
    parser.add_argument("--explain-dir", help="write each statement's plan text here")
    arguments = parser.parse_args()
    try:
        result = run(arguments)
    except BenchError as error:
        raise SystemExit(f"scale: {error}") from None
    print_tables(result)
    Path(arguments.json).write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"\nwrote {arguments.json}")
    if arguments.explain_dir:
        write_plan_texts(
            Path(arguments.explain_dir),
            (
                (f"{kind}-{name}-{index}", f"{entry['title']} on {name}", statement)
                for kind, item in result["requests"].items()
                for name, entry in item["by"].items()
                for index, statement in enumerate(entry["statements"])
            ),
        )


def write_plan_texts(
    directory: Path, statements: Iterable[tuple[str, str, dict[str, Any]]]
) -> None:
    """Each statement's SQL, parameters and plan in a file of its own in `directory`, from
    (file name stem, title, statement as the results hold it)."""
    directory.mkdir(parents=True, exist_ok=True)
    for stem, title, statement in statements:
        (directory / f"{stem}-{statement['label'].split()[0]}.txt").write_text(
            f"-- {title}\n{statement['sql']}\n-- parameters: {statement['parameters']}\n\n"
            f"{statement['plan_text']}\n"
        )


if __name__ == "__main__":
    main()
