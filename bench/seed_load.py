"""Benchmark `pomreport seed`: time and peak memory to load N callbacks into each store.

Usage: python bench/seed_load.py --callbacks 1000000 [--postgresql-url URL] [--store sqlite]

Each store gets a fresh database, migrated first (not timed); the seed runs as the real command
in a child process, whose wall time and peak resident memory are reported.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg

from service.db.migrations import upgrade_to_head
from service.settings import parse_database_url

DEFAULT_POSTGRESQL_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _run_seed(database_url: str, callbacks: int, seed: int) -> tuple[float, float]:
    """Run the seed command; return its wall seconds and peak memory in MiB."""
    environment = dict(os.environ, DATABASE_URL=database_url)
    command = [sys.executable, "-m", "service.cli", "seed"]
    command += ["--callbacks", str(callbacks), "--seed", str(seed)]
    started = time.perf_counter()
    child = subprocess.Popen(command, env=environment)
    # wait4 gives this child's own peak memory, not the largest of all children so far.
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"seed failed with exit status {child.returncode}")
    return seconds, usage.ru_maxrss / 1024


async def _admin(server_url: str, statement: str) -> None:
    connection = await asyncpg.connect(server_url)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def bench_sqlite(callbacks: int, seed: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{Path(directory) / 'bench.db'}"
        upgrade_to_head(parse_database_url(url))
        return _run_seed(url, callbacks, seed)


def bench_postgresql(server_url: str, callbacks: int, seed: int) -> tuple[float, float]:
    name = f"pomreport_bench_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}"'))
    try:
        url = parse_database_url(server_url).set(database=name)
        upgrade_to_head(url)
        return _run_seed(url.render_as_string(hide_password=False), callbacks, seed)
    finally:
        asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--callbacks", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--store", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument(
        "--postgresql-url",
        default=os.environ.get("POMREPORT_TEST_POSTGRESQL_URL", DEFAULT_POSTGRESQL_URL),
        help="server database to create the benchmark database from",
    )
    arguments = parser.parse_args()
    results: list[tuple[str, float, float]] = []
    if arguments.store in ("postgresql", "both"):
        measured = bench_postgresql(arguments.postgresql_url, arguments.callbacks, arguments.seed)
        results.append(("postgresql", *measured))
    if arguments.store in ("sqlite", "both"):
        results.append(("sqlite", *bench_sqlite(arguments.callbacks, arguments.seed)))
    print(f"\nseed of {arguments.callbacks:,} callbacks (seed {arguments.seed})")
    print(f"{'store':<12}{'seconds':>10}{'peak MiB':>10}")
    for store, seconds, peak in results:
        print(f"{store:<12}{seconds:>10.1f}{peak:>10.0f}")


if __name__ == "__main__":
    main()
