"""Two revisions of pomreport side by side: the report scenarios of bench/peers, alternated.

Usage:
    .venv/bin/python bench/revisions.py BASE [OTHER] [--scenarios a,b,c] [--rounds 6]
        [--requests 100] [--database-url URL]

BASE and OTHER are git revisions (OTHER defaults to the working tree as it is). Each is
checked out in a temporary worktree (the working tree runs from the repository itself) and
served by `pomreport serve` from that tree (PYTHONPATH first, so its `service` package is the
one imported; checked before anything is measured), both against the same database (default
the seedbench database of bench/peers, seeded as it describes).

Timings on this shared, noisy machine are only comparable side by side, so the two servers
take turns: each round sends `--requests` sequential requests of each scenario to one server,
then to the other (the order alternates every round), on one keep-alive connection, after a
warm-up. Per scenario and revision: median latency at the client, and server CPU per request
(from /proc, the server and its children), over all rounds; then OTHER / BASE.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "peers"))

import peers  # noqa: E402  (bench/peers/peers.py, found through the path above)
from report_latency import BenchError, free_port  # noqa: E402  (bench/, as peers.py does)

from service.settings import parse_database_url  # noqa: E402

REPOSITORY = HERE.parent
WORKING_TREE = "WORKTREE"


@dataclass(slots=True)
class Samples:
    latencies_ms: list[float] = field(default_factory=list)
    cpu_seconds: float = 0.0
    requests: int = 0

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000 * self.cpu_seconds / self.requests


@contextlib.contextmanager
def checked_out(revision: str) -> Iterator[Path]:
    """A tree holding `revision`: the repository itself for the working tree."""
    if revision == WORKING_TREE:
        yield REPOSITORY
        return
    with tempfile.TemporaryDirectory(prefix="pomreport-revision-") as directory:
        tree = Path(directory) / "tree"
        subprocess.run(
            ["git", "-C", str(REPOSITORY), "worktree", "add", "--detach", str(tree), revision],
            check=True,
            capture_output=True,
        )
        try:
            yield tree
        finally:
            subprocess.run(
                ["git", "-C", str(REPOSITORY), "worktree", "remove", "--force", str(tree)],
                check=False,
                capture_output=True,
            )


def serve(tree: Path, database_url: str) -> contextlib.AbstractContextManager[peers.Server]:
    """`pomreport serve` running the code of `tree`."""
    environment = dict(
        os.environ,
        DATABASE_URL=database_url,
        POMREPORT_EXPIRY_SWEEP_SECONDS="0",
        PYTHONPATH=str(tree),
    )
    imported = subprocess.run(
        [sys.executable, "-P", "-c", "import service; print(service.__file__)"],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not Path(imported).is_relative_to(tree):
        raise BenchError(f"the server would import {imported}, not the code of {tree}")
    port = free_port()
    launcher = (
        "import sys; from service.cli import main; "
        f"sys.argv = ['pomreport', 'serve', '--host', '127.0.0.1', '--port', '{port}']; "
        "sys.exit(main())"
    )
    # -P: no current directory ahead of PYTHONPATH, which would find the repository's own.
    return peers.serving(peers.POMREPORT, [sys.executable, "-P", "-c", launcher], environment, port)


def measure(
    server: peers.Server, client: httpx.Client, payload: dict[str, object], requests: int
) -> Samples:
    samples = Samples()
    before = peers.tree_cpu_seconds(server.process.pid)
    for _ in range(requests):
        started = time.perf_counter()
        response = client.post(server.url, json=payload)
        samples.latencies_ms.append(1000 * (time.perf_counter() - started))
        if response.status_code != 200 or "errors" in response.json():
            raise BenchError(f"{server.name} failed: {response.text[:300]}")
    samples.cpu_seconds = peers.tree_cpu_seconds(server.process.pid) - before
    samples.requests = requests
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("base")
    parser.add_argument("other", nargs="?", default=WORKING_TREE)
    parser.add_argument("--scenarios", default="a,b,c")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--database-url", default=peers.DEFAULT_DATABASE_URL)
    parser.add_argument("--as-of", default=peers.DEFAULT_AS_OF)
    arguments = parser.parse_args()
    scenarios = [peers.SCENARIOS[name] for name in arguments.scenarios.split(",")]
    as_of = dt.datetime.fromisoformat(arguments.as_of)
    plain = parse_database_url(arguments.database_url).set(drivername="postgresql")
    reports = asyncio.run(
        peers._resolve(plain.render_as_string(hide_password=False), scenarios, as_of)
    )
    revisions = (arguments.base, arguments.other)
    results: dict[tuple[str, str], Samples] = {}
    with contextlib.ExitStack() as stack:
        servers = {}
        for revision in revisions:
            tree = stack.enter_context(checked_out(revision))
            servers[revision] = stack.enter_context(serve(tree, arguments.database_url))
        clients = {
            revision: stack.enter_context(httpx.Client(timeout=60)) for revision in revisions
        }
        for report in reports:
            payload = report.payload(peers.POMREPORT)
            for revision in revisions:
                measure(servers[revision], clients[revision], payload, arguments.warmup)
                results[(report.scenario.name, revision)] = Samples()
            for round_number in range(arguments.rounds):
                order = revisions if round_number % 2 == 0 else revisions[::-1]
                for revision in order:
                    chunk = measure(
                        servers[revision], clients[revision], payload, arguments.requests
                    )
                    total = results[(report.scenario.name, revision)]
                    total.latencies_ms += chunk.latencies_ms
                    total.cpu_seconds += chunk.cpu_seconds
                    total.requests += chunk.requests
    print(f"\n{arguments.rounds} rounds x {arguments.requests} requests per scenario and revision")
    print(f"{'scenario':<10}{'revision':<14}{'p50 ms':>9}{'CPU ms/req':>12}")
    for report in reports:
        name = report.scenario.name
        for revision in revisions:
            samples = results[(name, revision)]
            p50 = statistics.median(samples.latencies_ms)
            print(f"{name:<10}{revision[:12]:<14}{p50:>9.2f}{samples.cpu_ms_per_request:>12.2f}")
        base, other = (results[(name, revision)] for revision in revisions)
        ratio_p50 = statistics.median(other.latencies_ms) / statistics.median(base.latencies_ms)
        ratio_cpu = other.cpu_ms_per_request / base.cpu_ms_per_request
        print(f"{'':<10}{'other/base':<14}{ratio_p50:>9.3f}{ratio_cpu:>12.3f}")


if __name__ == "__main__":
    main()
