"""What a refusal costs in allow-list mode (POMREPORT_TRUSTED_DOCUMENTS).

Runs `pomreport serve` in a child process on a migrated SQLite file, in allow-list mode with the
shipped manifest (open development mode on loopback, so no key lookup adds a statement), and
times, one request at a time over loopback with httpx:

1. a whole document the manifest lacks (the report query of bench/report_latency.py's size);
2. a hash the manifest lacks (Apollo's first request for an unknown document);
3. a whole document the manifest lacks that is large (about 200 KB);
4. for reference, `{ __typename }` on the same service without the allow-list (parsed,
   validated and executed, no statement either).

Each refusal is checked (403 FORBIDDEN, or PERSISTED_QUERY_NOT_FOUND), and the statements the
service ran over all of them are read from its /metrics (pomreport_sql_statements_per_request).

    .venv/bin/python bench/trusted_documents.py [--requests N]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from service.graph.trusted_documents import SHIPPED_MANIFEST

POMREPORT = [sys.executable, "-m", "service.cli"]
UNTRUSTED = (
    "query Untrusted($agentId: String!) { callbacksScheduledDetails(timePeriod: {lastDays: 7}, "
    "filters: {agentId: $agentId}) { totalRecords rows(first: 100) { edges { node { callbackId "
    "callbackType callbackStatus creationTime scheduledStartTime scheduledEndTime campaignName "
    "creatorAgentId contactId servicedByAgentId customCompletionCode systemCompletionCode } } } } }"
)
LARGE_UNTRUSTED = "# " + "x" * 200_000 + "\n{ __typename }"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def _serving(directory: Path, environment: dict[str, str]) -> Iterator[str]:
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{directory / 'bench.db'}",
        "POMREPORT_EXPIRY_SWEEP_SECONDS": "0",
        "POMREPORT_API_KEY_CACHE_SECONDS": "3600",
        "POMREPORT_RATE_LIMITS": "false",
        **environment,
    }
    subprocess.run([*POMREPORT, "migrate"], env=env, check=True, capture_output=True)
    port = _free_port()
    process = subprocess.Popen(
        [*POMREPORT, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base_url}/readyz").status_code == 200:
                    break
            assert process.poll() is None, "serve ended before it was ready"
            assert time.monotonic() < deadline, "serve was not ready within 60 s"
            time.sleep(0.1)
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=30)


def _metric_sum(client: httpx.Client, prefix: str) -> float:
    """A metric's value, added up over its labels, from the service's /metrics."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in client.get("/metrics").text.splitlines()
        if line.startswith((f"{prefix} ", f"{prefix}{{"))
    )


def _server_milliseconds(client: httpx.Client) -> tuple[float, float]:
    """The service's own time answering GraphQL requests so far (seconds summed, and count)."""
    return (
        _metric_sum(client, "pomreport_graphql_request_duration_seconds_sum"),
        _metric_sum(client, "pomreport_graphql_request_duration_seconds_count"),
    )


def _time(
    client: httpx.Client, body: dict[str, Any], status: int, code: str | None, requests: int
) -> tuple[list[float], float]:
    """Milliseconds per request as the client sees them, after 50 to warm up, and the service's
    own mean (from its arrival to its last byte); each answer checked."""
    timings = []
    seconds, count = _server_milliseconds(client)
    for number in range(requests + 50):
        started = time.perf_counter()
        response = client.post("/graphql", json=body)
        elapsed = (time.perf_counter() - started) * 1000
        assert response.status_code == status, response.text
        if code is not None:
            assert response.json()["errors"][0]["extensions"]["code"] == code, response.text
        if number >= 50:
            timings.append(elapsed)
    seconds_after, count_after = _server_milliseconds(client)
    return timings, 1000 * (seconds_after - seconds) / (count_after - count)


def _summary(name: str, measured: tuple[list[float], float]) -> str:
    timings, server_mean = measured
    ordered = sorted(timings)
    p99 = ordered[int(len(ordered) * 0.99) - 1]
    return (
        f"| {name} | {len(timings)} | {statistics.median(timings):.2f} | "
        f"{ordered[int(len(ordered) * 0.9) - 1]:.2f} | {p99:.2f} | {ordered[-1]:.2f} | "
        f"{server_mean:.3f} |"
    )


def main() -> None:
    """Time the refusals and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    arguments = parser.parse_args()
    unknown_hash = hashlib.sha256(UNTRUSTED.encode()).hexdigest()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-trusted-") as folder:
        trusted_mode = {"POMREPORT_TRUSTED_DOCUMENTS": str(SHIPPED_MANIFEST)}
        with (
            _serving(Path(folder), trusted_mode) as base_url,
            httpx.Client(base_url=base_url, headers={"accept": "application/json"}) as client,
        ):
            before = _metric_sum(client, "pomreport_sql_statements_per_request_sum")
            cases: list[tuple[str, dict[str, Any], int, str]] = [
                (
                    "untrusted document, 0.4 KB",
                    {"query": UNTRUSTED, "variables": {"agentId": "A1"}},
                    403,
                    "FORBIDDEN",
                ),
                (
                    "unknown hash",
                    {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": unknown_hash}}},
                    200,
                    "PERSISTED_QUERY_NOT_FOUND",
                ),
                ("untrusted document, 200 KB", {"query": LARGE_UNTRUSTED}, 403, "FORBIDDEN"),
            ]
            for name, body, status, code in cases:
                rows.append(_summary(name, _time(client, body, status, code, arguments.requests)))
            statements = _metric_sum(client, "pomreport_sql_statements_per_request_sum") - before
        with _serving(Path(folder), {}) as base_url, httpx.Client(base_url=base_url) as client:
            measured = _time(client, {"query": "{ __typename }"}, 200, None, arguments.requests)
            rows.append(_summary("`{ __typename }` run, no allow-list (reference)", measured))
    print("| request | n | median ms | p90 ms | p99 ms | max ms | service's own mean ms |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"\nSQL statements over every refusal: {statements:g}")


if __name__ == "__main__":
    main()
