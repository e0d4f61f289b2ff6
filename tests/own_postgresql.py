"""A PostgreSQL cluster of a test's own, on a free port, that the test may stop and start
(the machine's own server is never touched). Made with the server's binaries, as the
`postgres` user when the tests run as root (PostgreSQL refuses to run as root)."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from tests.serve_process import free_port


def _binaries() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("CI=true but PostgreSQL's server binaries (initdb, pg_ctl) are not installed")
    pytest.skip("PostgreSQL's server binaries (initdb, pg_ctl) are not installed")


class OwnCluster:
    """A cluster in a temporary directory; `stop()` and `start()` it at will."""

    def __init__(self, directory: Path, port: int) -> None:
        self.directory = directory
        self.port = port
        self._bin = _binaries()
        self._as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    @property
    def url(self) -> URL:
        """The cluster's `postgres` database, through asyncpg."""
        return URL.create(
            "postgresql+asyncpg",
            username="postgres",
            host="127.0.0.1",
            port=self.port,
            database="postgres",
        )

    def _run(self, *command: str) -> None:
        subprocess.run(
            [*self._as_postgres, str(self._bin / command[0]), *command[1:]],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def create(self) -> None:
        self._run(
            "initdb",
            "-D",
            str(self.directory / "data"),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl",
            "-D",
            str(self.directory / "data"),
            "-o",
            options,
            "-l",
            str(self.directory / "server.log"),
            "-w",
            "start",
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.directory / "data"), "-m", "fast", "-w", "stop")


@contextlib.contextmanager
def own_cluster() -> Iterator[OwnCluster]:
    """A started cluster of the test's own, removed afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="pomreport-cluster-"))
    directory.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    cluster = OwnCluster(directory, free_port())
    try:
        cluster.create()
        cluster.start()
        yield cluster
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            cluster.stop()
        shutil.rmtree(directory, ignore_errors=True)
