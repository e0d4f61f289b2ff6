"""What partitioning callback by creation month would change, measured on scratch copies.

Usage:
    .venv/bin/python bench/partition_trial.py --database-url URL [--months-back 36]
        [--kinds a,b,c,s7,s30] [--requests 30] [--warmup 10] [--as-of 2026-11-29T03:00Z]
        [--json bench/partition-trial-results.json] [--explain-dir DIR] [--keep] [--skip-build]
    .venv/bin/python bench/partition_trial.py --database-url URL --attempts --kinds a,b,c
        [--json bench/partition-trial-attempts-results.json]

Builds two copies of the seeded database's `callback` table in schemas of their own, beside the
service's tables (which it only reads), then drops them unless --keep:

    trial_ordered.callback      a plain table, rows inserted in creation order, as they arrive in
                                production (the seed writes them in random creation order);
    trial_partitioned.callback  PARTITION BY RANGE (created_at), one partition per UTC month
                                from --months-back months before the newest row's month to the
                                month after it (all but a few empty, as a database that
                                detaches nothing would have after that many months), rows
                                inserted in creation order; its primary key must hold the
                                partition key: (callback_id, created_at).

Each copy gets the primary key and the three indexes the measured statements use:
(created_at, callback_id), (creator_agent_id, created_at, callback_id) and (campaign_id,
created_at, callback_id), built after the rows as the seed builds them; then VACUUM (ANALYZE).
The times of the copy, of each index and of the vacuum are reported, and the cost of a write:
20,000 callbacks inserted into each copy with its indexes in place (a transaction rolled back).

Then the statements one request of each kind runs (bench/scale.py's kinds, captured from the
service on the seeded tables) are replayed on each of the three tables (`SET search_path`
puts a copy's schema first; the other tables stay the service's): median of --requests after
--warmup on one connection, prepared as the service prepares them, and EXPLAIN (ANALYZE,
BUFFERS) with its planning time.

With --attempts (after a run with --keep), only the attempts: a third schema, trial_attempts,
gets a copy of callback_attempt partitioned by its callback's creation month (a column it gains,
`callback_created_at`, as a partitioned callback table's foreign key would need), one partition
per month the callbacks span. Each report kind's page statement is then replayed on the
partitioned callbacks with the attempts plain, partitioned and probed by callback ID alone (as
the service's statement does), and partitioned and probed by callback ID and creation time
(which lets the executor prune to one partition per row).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import itertools
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "peers"))

import peers  # noqa: E402  (bench/peers/peers.py, found through the path above)
import scale  # noqa: E402  (bench/scale.py, beside this script)
from report_latency import BenchError, asyncpg_dsn  # noqa: E402

from service.settings import Settings, parse_database_url  # noqa: E402

DEFAULT_JSON = HERE / "partition-trial-results.json"
INDEXES = (
    ("created_at", "callback_id"),
    ("creator_agent_id", "created_at", "callback_id"),
    ("campaign_id", "created_at", "callback_id"),
)
VARIANTS = {
    "seeded": "public",
    "ordered": "trial_ordered, public",
    "partitioned": "trial_partitioned, public",
}


def _month(moment: dt.datetime, shift: int) -> dt.datetime:
    """The start of the UTC month `shift` months after the one holding `moment`."""
    index = moment.year * 12 + moment.month - 1 + shift
    return dt.datetime(index // 12, index % 12 + 1, 1, tzinfo=dt.UTC)


async def _timed(connection: asyncpg.Connection, statement: str) -> float:
    started = time.perf_counter()
    await connection.execute(statement)
    return time.perf_counter() - started


async def build(dsn: str, months_back: int) -> dict[str, Any]:
    """Make both copies; return what each step took and what each copy weighs."""
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("SET maintenance_work_mem = '256MB'")
        newest = await connection.fetchval("SELECT max(created_at) FROM public.callback")
        figures: dict[str, Any] = {"ordered": {}, "partitioned": {}}
        for schema in ("trial_ordered", "trial_partitioned"):
            await connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            await connection.execute(f"CREATE SCHEMA {schema}")
        like = "(LIKE public.callback INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        await connection.execute(f"CREATE TABLE trial_ordered.callback {like}")
        await connection.execute(
            f"CREATE TABLE trial_partitioned.callback {like} PARTITION BY RANGE (created_at)"
        )
        months = [_month(newest, shift) for shift in range(-months_back, 2)]
        for start, end in itertools.pairwise(months):
            await connection.execute(
                f"CREATE TABLE trial_partitioned.callback_{start:%Y_%m} PARTITION OF "
                f"trial_partitioned.callback FOR VALUES FROM ('{start.isoformat()}') "
                f"TO ('{end.isoformat()}')"
            )
        figures["partitioned"]["partitions"] = len(months) - 1
        for variant, schema, key in (
            ("ordered", "trial_ordered", "callback_id"),
            ("partitioned", "trial_partitioned", "callback_id, created_at"),
        ):
            steps = figures[variant]
            print(f"{variant}: copying the rows in creation order ...", flush=True)
            steps["copy_seconds"] = await _timed(
                connection,
                f"INSERT INTO {schema}.callback SELECT * FROM public.callback ORDER BY created_at",
            )
            print(f"{variant}: primary key and indexes ...", flush=True)
            steps["primary_key_seconds"] = await _timed(
                connection, f"ALTER TABLE {schema}.callback ADD PRIMARY KEY ({key})"
            )
            steps["index_seconds"] = {}
            for columns in INDEXES:
                steps["index_seconds"][", ".join(columns)] = await _timed(
                    connection, f"CREATE INDEX ON {schema}.callback ({', '.join(columns)})"
                )
            print(f"{variant}: vacuum ...", flush=True)
            # Of a partitioned table, VACUUM (ANALYZE) vacuums and analyzes every partition and
            # gathers the parent's own statistics as well.
            steps["vacuum_seconds"] = await _timed(
                connection, f"VACUUM (ANALYZE) {schema}.callback"
            )
            # pg_partition_tree lists nothing for a table that is not partitioned.
            sizes = await connection.fetchrow(
                "SELECT coalesce(sum(pg_table_size(relid)), 0)::bigint,"
                " coalesce(sum(pg_indexes_size(relid)), 0)::bigint FROM ("
                " SELECT relid FROM pg_partition_tree($1::regclass) WHERE isleaf"
                " UNION SELECT $1::regclass WHERE NOT EXISTS"
                " (SELECT FROM pg_partition_tree($1::regclass))) AS leaves",
                f"{schema}.callback",
            )
            assert sizes is not None
            steps["heap_bytes"], steps["index_bytes"] = sizes
            steps["write_seconds_20000"] = await _write_cost(connection, schema, newest)
        return figures
    finally:
        await connection.close()


async def _write_cost(connection: asyncpg.Connection, schema: str, newest: dt.datetime) -> float:
    """Seconds to insert 20,000 new callbacks into this copy with its indexes (rolled back)."""
    transaction = connection.transaction()
    await transaction.start()
    try:
        return await _timed(
            connection,
            f"INSERT INTO {schema}.callback SELECT 'T' || callback_id, callback_type, "
            "campaign_id, job_id, creator_agent_id, created_for_agent_id, contact_id, call_id, "
            f"'{newest.isoformat()}'::timestamptz - (random() * interval '1 hour'), "
            "scheduled_start_at, scheduled_end_at, status, serviced_by_agent_id, "
            "last_attempt_at, custom_completion_code, system_completion_code "
            "FROM public.callback ORDER BY callback_id LIMIT 20000",
        )
    finally:
        await transaction.rollback()


async def lookups_and_retention(dsn: str, lookups: int) -> dict[str, Any]:
    """Per table: a callback looked up by its ID alone, as mutations and `callback(callbackId:)`
    do (median of `lookups` random IDs, prepared), and the removal of September 2026's callbacks:
    a DELETE, or a DETACH and DROP of the month's partition (each rolled back)."""
    connection = await asyncpg.connect(dsn)
    try:
        ids = [
            row[0]
            for row in await connection.fetch(
                "SELECT callback_id FROM public.callback TABLESAMPLE SYSTEM (0.1) LIMIT $1",
                lookups,
            )
        ]
        figures: dict[str, Any] = {}
        for variant, search_path in VARIANTS.items():
            await connection.execute(f"SET search_path = {search_path}")
            statement = await connection.prepare(
                "SELECT callback_id, status, created_at FROM callback WHERE callback_id = $1"
            )
            seconds = []
            for callback_id in ids * 2:  # the first pass warms the cache
                started = time.perf_counter()
                await statement.fetch(callback_id)
                seconds.append(time.perf_counter() - started)
            plan = await connection.fetch(
                "EXPLAIN (ANALYZE, BUFFERS) SELECT callback_id, status, created_at FROM callback"
                " WHERE callback_id = $1",
                ids[0],
            )
            figures[variant] = {
                "lookup_median_ms": 1000 * statistics.median(seconds[len(ids) :]),
                "lookup_plan": "\n".join(row[0] for row in plan),
            }
        await connection.execute("SET search_path = public")
        month = ("2026-09-01T00:00:00+00:00", "2026-10-01T00:00:00+00:00")
        for variant, statements in (
            (
                "ordered",
                [
                    "DELETE FROM trial_ordered.callback"
                    f" WHERE created_at >= '{month[0]}' AND created_at < '{month[1]}'"
                ],
            ),
            (
                "partitioned",
                [
                    "ALTER TABLE trial_partitioned.callback DETACH PARTITION"
                    " trial_partitioned.callback_2026_09",
                    "DROP TABLE trial_partitioned.callback_2026_09",
                ],
            ),
        ):
            rows = await connection.fetchval(
                f"SELECT count(*) FROM trial_{variant}.callback"
                f" WHERE created_at >= '{month[0]}' AND created_at < '{month[1]}'"
            )
            transaction = connection.transaction()
            await transaction.start()
            try:
                started = time.perf_counter()
                for sql in statements:
                    await connection.execute(sql)
                took = time.perf_counter() - started
            finally:
                await transaction.rollback()
            figures[variant]["retention_rows"] = rows
            figures[variant]["retention_seconds"] = took
            figures[variant]["retention_statements"] = statements
        return figures
    finally:
        await connection.close()


ATTEMPTS_PROBE = "WHERE callback_attempt.callback_id = page.callback_id)"
ATTEMPTS_PROBE_PRUNED = (
    "WHERE callback_attempt.callback_id = page.callback_id"
    " AND callback_attempt.callback_created_at = page.created_at)"
)
ATTEMPT_VARIANTS = {
    # name: (search_path, whether the attempts' probe names the callback's creation time)
    "callbacks partitioned, attempts plain": ("trial_partitioned, public", False),
    "both partitioned, attempts by callback ID": (
        "trial_partitioned, trial_attempts, public",
        False,
    ),
    "both partitioned, attempts by callback ID and creation time": (
        "trial_partitioned, trial_attempts, public",
        True,
    ),
}


async def build_attempts(dsn: str) -> dict[str, Any]:
    """A copy of callback_attempt partitioned by its callback's creation month (a column it
    gains, `callback_created_at`), one partition per month the callbacks span and the next."""
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("SET maintenance_work_mem = '256MB'")
        span = await connection.fetchrow(
            "SELECT min(created_at), max(created_at) FROM public.callback"
        )
        assert span is not None
        oldest, newest = span
        await connection.execute("DROP SCHEMA IF EXISTS trial_attempts CASCADE")
        await connection.execute("CREATE SCHEMA trial_attempts")
        await connection.execute(
            "CREATE TABLE trial_attempts.callback_attempt (LIKE public.callback_attempt"
            " INCLUDING DEFAULTS INCLUDING CONSTRAINTS, callback_created_at timestamptz NOT NULL)"
            " PARTITION BY RANGE (callback_created_at)"
        )
        months = [_month(oldest, 0)]
        while months[-1] <= _month(newest, 1):
            months.append(_month(months[-1], 1))
        for start, end in itertools.pairwise(months):
            await connection.execute(
                f"CREATE TABLE trial_attempts.callback_attempt_{start:%Y_%m} PARTITION OF "
                f"trial_attempts.callback_attempt FOR VALUES FROM ('{start.isoformat()}') "
                f"TO ('{end.isoformat()}')"
            )
        figures: dict[str, Any] = {"partitions": len(months) - 1}
        print("attempts: copying with their callbacks' creation times ...", flush=True)
        figures["copy_seconds"] = await _timed(
            connection,
            "INSERT INTO trial_attempts.callback_attempt SELECT a.*, c.created_at"
            " FROM public.callback_attempt a JOIN public.callback c USING (callback_id)",
        )
        figures["index_seconds"] = await _timed(
            connection,
            "CREATE INDEX ON trial_attempts.callback_attempt (callback_id, attempted_at)",
        )
        figures["vacuum_seconds"] = await _timed(
            connection, "VACUUM (ANALYZE) trial_attempts.callback_attempt"
        )
        return figures
    finally:
        await connection.close()


def measure_attempts(
    dsn: str, settings: Settings, requests: dict[str, scale.Request], warmup: int, count: int
) -> dict[str, Any]:
    """Each report kind's page statement with the attempts plain or partitioned, probed by the
    callback's ID alone or with its creation time (which lets the executor prune)."""
    measured: dict[str, Any] = {}
    for kind, request in requests.items():
        if request.first is None:
            continue
        statements = peers.capture_statements(settings, request.payload)
        page = next(s for s in statements if s.sql.startswith("SELECT page."))
        if ATTEMPTS_PROBE not in page.sql:
            raise BenchError("the page statement no longer probes the attempts as expected")
        pruned = dataclasses.replace(
            page, sql=page.sql.replace(ATTEMPTS_PROBE, ATTEMPTS_PROBE_PRUNED)
        )
        measured[kind] = {"title": request.title, "by": {}}
        for variant, (search_path, names_time) in ATTEMPT_VARIANTS.items():
            print(f"{kind} page: {variant} ...", flush=True)
            measured[kind]["by"][variant] = asyncio.run(
                scale.floor_and_plans(
                    dsn, [pruned if names_time else page], warmup, count, search_path=search_path
                )
            )[0]
    return measured


async def _columns_match(dsn: str) -> None:
    """The copy's INSERT ... SELECT lists the columns in the seeded table's order; check it."""
    connection = await asyncpg.connect(dsn)
    try:
        names = [
            row[0]
            for row in await connection.fetch(
                "SELECT attname FROM pg_attribute WHERE attrelid = 'public.callback'::regclass"
                " AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
            )
        ]
    finally:
        await connection.close()
    if names[8] != "created_at" or names[0] != "callback_id" or len(names) != 16:
        raise BenchError(f"public.callback's columns changed: {names}")


async def _drop(dsn: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        for schema in ("trial_ordered", "trial_partitioned", "trial_attempts"):
            await connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--months-back", type=int, default=36)
    parser.add_argument("--kinds", default="a,b,c,s7,s30")
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--as-of", default=peers.DEFAULT_AS_OF)
    parser.add_argument("--json", default=str(DEFAULT_JSON))
    parser.add_argument("--explain-dir")
    parser.add_argument("--keep", action="store_true", help="leave the copies in place")
    parser.add_argument("--skip-build", action="store_true", help="measure copies kept before")
    parser.add_argument(
        "--attempts",
        action="store_true",
        help="only the attempts: partition a copy of them too (beside callback copies kept "
        "with --keep) and measure the report's pages",
    )
    arguments = parser.parse_args()
    as_of = dt.datetime.fromisoformat(arguments.as_of.replace("Z", "+00:00")).astimezone(dt.UTC)
    kinds = [kind.strip() for kind in arguments.kinds.split(",") if kind.strip()]
    dsn = asyncpg_dsn(parse_database_url(arguments.database_url))
    asyncio.run(_columns_match(dsn))
    result: dict[str, Any] = {
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "arguments": vars(arguments),
    }
    settings = dataclasses.replace(
        Settings.from_environment(
            dict(
                os.environ,
                DATABASE_URL=arguments.database_url,
                POMREPORT_EXPIRY_SWEEP_SECONDS="0",
            )
        ),
        open_without_keys=True,
    )
    if arguments.attempts:
        requests = scale.resolve(dsn, kinds, as_of)
        if not arguments.skip_build:
            result["attempts_build"] = asyncio.run(build_attempts(dsn))
        result["attempts"] = measure_attempts(
            dsn, settings, requests, arguments.warmup, arguments.requests
        )
        result["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        print_attempts(result)
        Path(arguments.json).write_text(json.dumps(result, indent=2, default=str) + "\n")
        print(f"\nwrote {arguments.json}")
        return
    if not arguments.skip_build:
        result["build"] = asyncio.run(build(dsn, arguments.months_back))
    requests = scale.resolve(dsn, kinds, as_of)
    result["requests"] = {}
    try:
        print("lookups by callback ID, and retention of a month ...", flush=True)
        result["lookups_and_retention"] = asyncio.run(lookups_and_retention(dsn, 200))
        for kind in kinds:
            statements = peers.capture_statements(settings, requests[kind].payload)
            result["requests"][kind] = {"title": requests[kind].title, "by": {}}
            for variant, search_path in VARIANTS.items():
                print(f"{kind} on {variant} ...", flush=True)
                result["requests"][kind]["by"][variant] = asyncio.run(
                    scale.floor_and_plans(
                        dsn,
                        statements,
                        arguments.warmup,
                        arguments.requests,
                        search_path=search_path,
                    )
                )
    finally:
        if not arguments.keep:
            asyncio.run(_drop(dsn))
    result["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    print_tables(result)
    Path(arguments.json).write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"\nwrote {arguments.json}")
    if arguments.explain_dir:
        scale.write_plan_texts(
            Path(arguments.explain_dir),
            (
                (f"{kind}-{variant}-{index}", f"{item['title']} on {variant}", statement)
                for kind, item in result["requests"].items()
                for variant, statements in item["by"].items()
                for index, statement in enumerate(statements)
            ),
        )


def print_attempts(result: dict[str, Any]) -> None:
    if "attempts_build" in result:
        build = result["attempts_build"]
        print(
            f"\nattempts: {build['partitions']} partitions, copy {build['copy_seconds']:.1f} s, "
            f"index {build['index_seconds']:.1f} s, vacuum {build['vacuum_seconds']:.1f} s"
        )
    print("\n| page | " + " | ".join(ATTEMPT_VARIANTS) + " |")
    print("|---|" + "---|" * len(ATTEMPT_VARIANTS))
    print("| | median ms (planning + execution ms; shared blocks hit/read) |")
    for item in result["attempts"].values():
        cells = [
            f"{s['median_ms']:.2f} ({s['planning_ms']:.2f} + {s['execution_ms']:.2f}; "
            f"{s['buffers']['Shared Hit Blocks']}/{s['buffers']['Shared Read Blocks']})"
            for s in (item["by"][variant] for variant in ATTEMPT_VARIANTS)
        ]
        print(f"| {item['title']} | " + " | ".join(cells) + " |")


def print_tables(result: dict[str, Any]) -> None:
    if "build" in result:
        print(
            "\n| copy | copy s | primary key s | indexes s | vacuum s | heap GiB | "
            "indexes GiB | 20,000 inserts s |"
        )
        print("|---|---|---|---|---|---|---|---|")
        gib = 1024**3
        for variant, steps in result["build"].items():
            print(
                f"| {variant} | {steps['copy_seconds']:.1f} | {steps['primary_key_seconds']:.1f}"
                f" | {sum(steps['index_seconds'].values()):.1f} | {steps['vacuum_seconds']:.1f}"
                f" | {steps['heap_bytes'] / gib:.2f} | {steps['index_bytes'] / gib:.2f}"
                f" | {steps['write_seconds_20000']:.2f} |"
            )
    if "lookups_and_retention" in result:
        print("\n| table | lookup by callback ID, median ms | removing September 2026 |")
        print("|---|---|---|")
        for variant, figures in result["lookups_and_retention"].items():
            removal = (
                f"{figures['retention_rows']:,} rows in {figures['retention_seconds']:.2f} s"
                if "retention_seconds" in figures
                else ""
            )
            print(f"| {variant} | {figures['lookup_median_ms']:.3f} | {removal} |")
    print("\n| request | statement | " + " | ".join(VARIANTS) + " |")
    print("|---|---|" + "---|" * len(VARIANTS))
    print("| | | median ms (planning + execution ms; shared blocks hit/read) |")
    for item in result["requests"].values():
        rows = zip(*(item["by"][variant] for variant in VARIANTS), strict=True)
        for statements in rows:
            cells = [
                f"{s['median_ms']:.2f} ({s['planning_ms']:.2f} + {s['execution_ms']:.2f}; "
                f"{s['buffers']['Shared Hit Blocks']}/{s['buffers']['Shared Read Blocks']})"
                for s in statements
            ]
            print(f"| {item['title']} | {statements[0]['label']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
