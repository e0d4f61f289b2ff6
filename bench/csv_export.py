"""The report's CSV export at scale: rows per second and the server's peak memory.

Starts `pomreport serve` in a child process over a seeded database, downloads
`GET /reports/callbacks-scheduled-details.csv` (the whole report by default: `preset=ALL`)
over loopback HTTP a few times, and reports for each download the rows, the bytes, the
seconds, rows per second, the time to the first byte, the server's CPU seconds, and the
server's peak resident memory (VmHWM from /proc/<pid>/status) before and after. The client
reads with http.client in 1 MiB blocks and only counts lines, so it takes little of the CPU
the server and the database need. The row count is checked against the report's
`totalRecords` for the same period.

    .venv/bin/python bench/csv_export.py [--database-url URL] [--downloads N] [--query Q]
    .venv/bin/python bench/csv_export.py --database-url sqlite:////tmp/csvbench.db --seed-if-missing

Targets (bench/README.md, CSV export): 1,000,000 rows on PostgreSQL at >= 100,000 rows/s with
the server's peak RSS under 300 MB.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# The report benchmark's helpers, from the file beside this one.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from report_latency import (
    DEFAULT_DATABASE_URL,
    REPOSITORY,
    BenchError,
    cpu_check,
    ensure_seeded,
    pomreport_command,
    serving_child,
)

from service.settings import parse_database_url

CSV_PATH = "/reports/callbacks-scheduled-details.csv"
BLOCK = 1 << 20
TARGET_ROWS_PER_SECOND = 100_000
TARGET_PEAK_MIB = 300


def peak_mib(pid: int) -> float:
    """A process's peak resident memory so far (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise BenchError(f"no VmHWM for process {pid}")


def cpu_seconds(pid: int) -> float:
    """A process's user plus system CPU time so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def total_records(port: int, query: str) -> int:
    """The report's totalRecords for the download's period (given as preset=... only)."""
    period = dict(part.split("=", 1) for part in query.split("&"))
    time_period = ", ".join(
        f"{name}: {value}" if name in ("preset", "lastDays", "lastHours") else f'{name}: "{value}"'
        for name, value in period.items()
    )
    document = f"{{ callbacksScheduledDetails(timePeriod: {{{time_period}}}) {{ totalRecords }} }}"
    body = json.dumps({"query": document})
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    connection.request("POST", "/graphql", body, {"content-type": "application/json"})
    answer: dict[str, Any] = json.loads(connection.getresponse().read())
    connection.close()
    if "errors" in answer:
        raise BenchError(f"totalRecords failed: {answer['errors']}")
    return int(answer["data"]["callbacksScheduledDetails"]["totalRecords"])


def download(port: int, query: str, server_pid: int) -> dict[str, float]:
    """One download, read to the end; its figures."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    cpu_before = cpu_seconds(server_pid)
    started = time.perf_counter()
    connection.request("GET", f"{CSV_PATH}?{query}")
    response = connection.getresponse()
    if response.status != 200:
        raise BenchError(f"HTTP {response.status}: {response.read()[:500]!r}")
    first_byte = None
    size = lines = 0
    while block := response.read1(BLOCK):
        if first_byte is None:
            first_byte = time.perf_counter() - started
        size += len(block)
        # Line ends, by their LF (a CRLF may straddle two blocks); the seed's text holds none.
        lines += block.count(b"\n")
    seconds = time.perf_counter() - started
    connection.close()
    rows = lines - 1  # the header row
    return {
        "rows": rows,
        "bytes": size,
        "seconds": seconds,
        "rows_per_second": rows / seconds,
        "first_byte": first_byte or seconds,
        "server_cpu": cpu_seconds(server_pid) - cpu_before,
    }


def run(raw_url: str, query: str, downloads: int) -> None:
    with serving_child(raw_url) as (port, server):
        expected = total_records(port, query)
        check_before = cpu_check(20)
        print(
            f"database {parse_database_url(raw_url).database}: {expected:,} rows for {query}; "
            f"server pid {server.pid}, peak RSS after start {peak_mib(server.pid):.0f} MiB\n"
        )
        print("| download | rows | MB | seconds | rows/s | first byte s | server CPU s "
              "| server peak RSS MiB |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|")
        results = []
        for number in range(1, downloads + 1):
            figures = download(port, query, server.pid)
            if figures["rows"] != expected:
                raise BenchError(f"download {number}: {figures['rows']} rows, not {expected}")
            results.append(figures)
            print(
                f"| {number} | {figures['rows']:,.0f} | {figures['bytes'] / 1e6:.0f} "
                f"| {figures['seconds']:.1f} | {figures['rows_per_second']:,.0f} "
                f"| {figures['first_byte']:.2f} | {figures['server_cpu']:.1f} "
                f"| {peak_mib(server.pid):.0f} |"
            )
        final_peak = peak_mib(server.pid)
        check_after = cpu_check(20)
    rates = [figures["rows_per_second"] for figures in results]
    print(
        f"\nmedian {statistics.median(rates):,.0f} rows/s, best {max(rates):,.0f} rows/s "
        f"(target >= {TARGET_ROWS_PER_SECOND:,}); server peak RSS {final_peak:.0f} MiB "
        f"(target < {TARGET_PEAK_MIB})"
    )
    print(
        f"CPU check (bench/report_latency.py's fixed Python loop, median ms; 3.9 on a quiet "
        f"machine): before {check_before.median:.1f}, after {check_after.median:.1f}"
    )


def ensure_sqlite_seeded(raw_url: str, seed_if_missing: bool, callbacks: int) -> None:
    """Create, migrate and seed an SQLite file that does not exist yet, if asked."""
    path = Path(str(parse_database_url(raw_url).database))
    if path.exists():
        return
    if not seed_if_missing:
        raise BenchError(f"{path} does not exist; rerun with --seed-if-missing")
    environment = dict(os.environ, DATABASE_URL=raw_url)
    for arguments in (
        ["migrate"],
        ["seed", "--callbacks", str(callbacks), "--seed", "1", "--as-of", "2026-11-29T03:00Z"],
    ):
        print(f"running pomreport {' '.join(arguments)}", file=sys.stderr)
        subprocess.run(pomreport_command() + arguments, env=environment, cwd=REPOSITORY, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=DEFAULT_DATABASE_URL,
        help="a seeded, migrated database (default: the report benchmark's PostgreSQL one)",
    )
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--seed-if-missing", action="store_true")
    parser.add_argument("--callbacks", type=int, default=1_000_000)
    parser.add_argument("--downloads", type=int, default=3)
    parser.add_argument(
        "--query", default="preset=ALL", help="the download's query string (default preset=ALL)"
    )
    arguments = parser.parse_args()
    try:
        if parse_database_url(arguments.database_url).get_backend_name() == "sqlite":
            ensure_sqlite_seeded(
                arguments.database_url, arguments.seed_if_missing, arguments.callbacks
            )
        else:
            ensure_seeded(
                arguments.database_url,
                arguments.admin_url,
                arguments.seed_if_missing,
                arguments.callbacks,
            )
        run(arguments.database_url, arguments.query, arguments.downloads)
    except BenchError as error:
        raise SystemExit(f"bench/csv_export.py: {error}") from None


if __name__ == "__main__":
    main()
