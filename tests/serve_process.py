"""`pomreport serve` as a real child process on a migrated SQLite file, for tests that need
what only the command does (logging, workers, signals)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

POMREPORT = [sys.executable, "-m", "service.cli"]


def free_port() -> int:
    """A loopback port nobody listens on (now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class ServeProcess:
    base_url: str
    process: subprocess.Popen[bytes]
    log: Path


@contextlib.contextmanager
def serving(
    directory: Path, *arguments: str, environment: dict[str, str] | None = None
) -> Iterator[ServeProcess]:
    """Migrate a SQLite file in `directory`, run `pomreport serve` on it (its output in
    `directory`/serve.log) until /readyz answers, and stop it (SIGTERM) when the block ends."""
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{directory / 'serve.db'}",
        "POMREPORT_EXPIRY_SWEEP_SECONDS": "0",
        **(environment or {}),
    }
    subprocess.run([*POMREPORT, "migrate"], env=env, check=True, capture_output=True)
    port = free_port()
    log = directory / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*POMREPORT, "serve", "--port", str(port), *arguments],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        with httpx.Client(base_url=base_url) as client:
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if client.get("/readyz").status_code == 200:
                        break
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        yield ServeProcess(base_url, process, log)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
