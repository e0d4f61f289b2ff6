"""Sixteen concurrent writers through the mutations keep every SPEC 2.3 invariant, on a real
database file (SQLite) and on PostgreSQL; bench/sqlite_writers.py runs the same for a minute."""

from __future__ import annotations

import os

from sqlalchemy.engine import URL

from tests.callbacks.write_load import EXPECTED_CODES, run_write_load

# Seconds the writers run; longer runs: POMREPORT_TEST_WRITE_LOAD_SECONDS=60.
SECONDS = float(os.environ.get("POMREPORT_TEST_WRITE_LOAD_SECONDS", "3"))


async def test_sixteen_concurrent_writers_keep_every_invariant(database_url: URL) -> None:
    report = await run_write_load(database_url, writers=16, seconds=SECONDS)
    assert report.kept, (report.violations, report.examples)
    assert set(report.codes) <= EXPECTED_CODES, report.examples
    # Every kind of change happened, on callbacks the writers share.
    assert report.statuses.keys() >= {"ACTIVE", "OVERWRITTEN", "COMPLETED", "EXPIRED"}, report
    assert report.statuses["CONTACT_EXCLUDED"] > 0 or report.answers[("exclude", "OK")] > 0
    assert report.answers[("schedule", "OK")] > 16
    assert report.terminal_snapshots > 2
