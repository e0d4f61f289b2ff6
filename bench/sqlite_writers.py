"""Concurrent writers on SQLite for a minute, then every SPEC 2.3 invariant checked by SQL.

The workload of tests/callbacks/test_concurrent_writers.py (tests/callbacks/write_load.py), run
longer: 16 writers send mutations through the service in-process (ASGI, no network), one at a
time each, scheduling, overwriting, attempting, completing, postponing, expiring and excluding
on (agent, contact, call) triples they share. It prints mutations per second, latency
percentiles, the answers by code, the callbacks by final status and each invariant check.

    .venv/bin/python bench/sqlite_writers.py [--seconds 60] [--writers 16] [--database-url URL]

Without --database-url it migrates a fresh SQLite file in a temporary directory; a URL given
is migrated to head and must be a database that may take test data (a campaign of its own).
The exit status is 1 when an invariant broke or a request got an internal error.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import sys
import tempfile
from pathlib import Path

from service.db.migrations import upgrade_to_head
from service.settings import Settings, describe_url, parse_database_url

# The workload lives beside the test that runs it for seconds.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.callbacks.write_load import WriteLoadReport, run_write_load


def _print(report: WriteLoadReport, settings: Settings) -> None:
    latencies = sorted(report.latencies)

    def percentile(share: float) -> float:
        return latencies[min(len(latencies) - 1, int(share * len(latencies)))] * 1000

    print(f"database: {describe_url(settings.database_url)}")
    print(
        f"writers: {report.writers}, seconds: {report.seconds:.1f}, "
        f"busy timeout: {settings.sqlite_busy_timeout_ms} ms, "
        f"statement timeout: {settings.statement_timeout_ms} ms"
    )
    print(f"mutations: {report.mutations} ({report.mutations / report.seconds:.1f}/s)")
    print(
        f"latency ms: median {statistics.median(latencies) * 1000:.1f}, "
        f"p90 {percentile(0.9):.1f}, p99 {percentile(0.99):.1f}, max {latencies[-1] * 1000:.1f}"
    )
    print(f"answers by code: {dict(report.codes.most_common())}")
    print(f"HTTP statuses: {dict(report.http_statuses.most_common())}")
    print("answers by operation and code:")
    for (operation, code), count in sorted(report.answers.items()):
        print(f"  {operation:12} {code:20} {count}")
    print(f"callbacks by final status: {dict(report.statuses.most_common())}")
    print(
        f"status changes delivered: {report.changes_delivered}; "
        f"terminal snapshots compared: {report.terminal_snapshots}"
    )
    print("invariant checks (rows or requests breaking each):")
    for name, count in report.violations.items():
        print(f"  {name:48} {count} {'ok' if count == 0 else 'BROKEN'}")
    for name, examples in report.examples.items():
        print(f"  e.g. {name}: {examples[:3]}")
    print("every invariant kept" if report.kept else "INVARIANTS BROKEN")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    parser.add_argument("--busy-timeout-ms", type=int, help="default: the service's")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sqlite-writers-") as directory:
        url = parse_database_url(arguments.database_url or f"sqlite:///{directory}/writers.db")
        upgrade_to_head(url)
        settings = Settings(database_url=url)
        if arguments.busy_timeout_ms is not None:
            settings = dataclasses.replace(
                settings, sqlite_busy_timeout_ms=arguments.busy_timeout_ms
            )
        report = asyncio.run(
            run_write_load(
                url,
                writers=arguments.writers,
                seconds=arguments.seconds,
                seed=arguments.seed,
                settings=settings,
            )
        )
        _print(report, settings)
    return 0 if report.kept else 1


if __name__ == "__main__":
    sys.exit(main())
