"""What an agent key's row scope costs at scale.

Runs the service in-process (ASGI, no network) over a seeded database with two temporary API
keys, a viewer's and the busiest agent's, and times:

1. the report as a viewer filtered to the agent (`filters: {agentId}`): bench/report_latency.py's
   workload, for reference;
2. the same report as the agent, without a filter: the scope alone picks the rows (created,
   assigned and serviced, so more of them);
3. `callbacks(first: 100) { totalCount }` over all time, as the agent and as the viewer.

It prints medians and p95 per case, and PostgreSQL's plan time for the scoped count. The keys are
deleted at the end, so the database stays open for `serve` on loopback and the other benchmarks.

    .venv/bin/python bench/agent_scope.py [--database-url URL] [--requests N]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import delete, event, text

from service.app import create_app
from service.auth.api_keys import create_api_key
from service.cli import freeze_long_lived_objects
from service.db.engines import create_engine, create_session_maker
from service.db.models.api_key import ApiKey, Role
from service.settings import Settings

# The report benchmark's query and helpers, from the file beside this one.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from report_latency import DEFAULT_DATABASE_URL, REPORT_QUERY, _busiest_agent, asyncpg_dsn

KEY_NAME = "bench/agent_scope.py"

SCOPED_REPORT = REPORT_QUERY.replace("query Full($agentId: String!, ", "query Scoped(").replace(
    ", filters: {agentId: $agentId}", ""
)
ALL_TIME_LIST = """query AllTime { callbacks(first: 100) {
  totalCount edges { node { callbackId creatorAgentId createdForAgentId servicedByAgentId } } } }"""


async def _time(
    client: httpx.AsyncClient,
    key: str,
    query: str,
    variables: dict[str, Any],
    requests: int,
    statements: list[str],
) -> tuple[list[float], dict[str, Any], int]:
    headers = {"Authorization": f"Bearer {key}"}
    payload = {"query": query, "variables": variables}
    body: dict[str, Any] = {}
    for _ in range(5):  # warm: key cache, statement caches, connections
        body = (await client.post("/graphql", json=payload, headers=headers)).json()
        if "errors" in body:
            raise SystemExit(f"request failed: {body['errors']}")
    seconds = []
    for _ in range(requests):
        statements.clear()
        started = time.perf_counter()
        response = await client.post("/graphql", json=payload, headers=headers)
        seconds.append(time.perf_counter() - started)
        response.raise_for_status()
    return seconds, body["data"], len(statements)


def _ms(seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"{statistics.median(ordered) * 1000:.1f} ms | {p95 * 1000:.1f} ms"


async def run(database_url: str, requests: int) -> None:
    # Rate limits off: the keys make hundreds of requests a second here, which is what a key's
    # limit is there to stop, and what this measures is the scope's cost per request.
    settings = dataclasses.replace(
        Settings.from_environment(dict(os.environ, DATABASE_URL=database_url)), rate_limits=False
    )
    agent, created_in_week = await _busiest_agent(asyncpg_dsn(settings.database_url), settings)
    engine = create_engine(settings.database_url)
    session_maker = create_session_maker(engine)
    _row, viewer_key = await create_api_key(session_maker, Role.VIEWER, name=KEY_NAME)
    _row, agent_key = await create_api_key(session_maker, Role.AGENT, agent_id=agent, name=KEY_NAME)
    try:
        async with engine.connect() as connection:
            total = await connection.scalar(text("SELECT count(*) FROM callback"))
            visible = await connection.scalar(
                text(
                    "SELECT count(*) FROM callback WHERE creator_agent_id = :a "
                    "OR created_for_agent_id = :a OR serviced_by_agent_id = :a"
                ),
                {"a": agent},
            )
            plan = "n/a"
            if engine.dialect.name == "postgresql":
                lines = (
                    await connection.execute(
                        text(
                            "EXPLAIN (ANALYZE, FORMAT TEXT) SELECT count(*) FROM callback "
                            "WHERE creator_agent_id = :a OR created_for_agent_id = :a "
                            "OR serviced_by_agent_id = :a"
                        ),
                        {"a": agent},
                    )
                ).scalars()
                plan = "; ".join(
                    line.strip() for line in lines if "Bitmap" in line or "Execution" in line
                )
        print(
            f"database {settings.database_url.database}: {total:,} callbacks; agent {agent} "
            f"created {created_in_week} in the last 7 days and sees {visible:,} in all"
        )
        print(f"PostgreSQL plan of the scoped count: {plan}")

        app = create_app(settings)
        freeze_long_lived_objects()  # as `pomreport serve` does
        statements: list[str] = []
        async with app.router.lifespan_context(app):
            event.listen(
                app.state.engine.sync_engine,
                "before_cursor_execute",
                lambda *arguments: statements.append(arguments[2]),
            )
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                cases: list[tuple[str, str, str, dict[str, Any], str]] = [
                    ("report, viewer key, filters: {agentId}", viewer_key, REPORT_QUERY,
                     {"agentId": agent, "first": 100}, "report"),
                    ("report, agent key, no filter", agent_key, SCOPED_REPORT, {"first": 100},
                     "report"),
                    ("callbacks(first: 100) all time + totalCount, agent key", agent_key,
                     ALL_TIME_LIST, {}, "list"),
                    ("callbacks(first: 100) all time + totalCount, viewer key", viewer_key,
                     ALL_TIME_LIST, {}, "list"),
                ]  # fmt: skip
                print(f"\n{requests} requests each, in-process, concurrency 1\n")
                print("| case | rows | total | statements | median | p95 |")
                print("|---|---|---|---|---|---|")
                for label, key, query, variables, shape in cases:
                    seconds, data, count = await _time(
                        client, key, query, variables, requests, statements
                    )
                    if shape == "report":
                        report = data["callbacksScheduledDetails"]
                        rows, total_rows = len(report["rows"]["edges"]), report["totalRecords"]
                    else:
                        rows = len(data["callbacks"]["edges"])
                        total_rows = data["callbacks"]["totalCount"]
                    print(f"| {label} | {rows} | {total_rows:,} | {count} | {_ms(seconds)} |")
    finally:
        async with session_maker() as session, session.begin():
            await session.execute(delete(ApiKey).where(ApiKey.name == KEY_NAME))
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=DEFAULT_DATABASE_URL,
        help="a seeded, migrated database (default: the report benchmark's PostgreSQL one)",
    )
    parser.add_argument("--requests", type=int, default=100)
    arguments = parser.parse_args()
    asyncio.run(run(arguments.database_url, arguments.requests))


if __name__ == "__main__":
    main()
