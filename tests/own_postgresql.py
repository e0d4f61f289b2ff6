"""A PostgreSQL cluster of a test's own, on a free port, that the test may stop and start
(the machine's own server is never touched), and streaming replicas of it. Made with the
server's binaries, as the `postgres` user when the tests run as root (PostgreSQL refuses to
run as root)."""

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
    """A cluster in a temporary directory; `stop()` and `start()` it at will. `settings` are
    passed to the server at each start (e.g. `log_statement=all`)."""

    def __init__(self, directory: Path, port: int, settings: dict[str, str] | None = None) -> None:
        self.directory = directory
        self.port = port
        self.settings = settings or {}
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

    @property
    def log(self) -> Path:
        """The server's log (its stderr)."""
        return self.directory / "server.log"

    def create_replica_of(self, primary: OwnCluster) -> None:
        """Make this cluster a streaming replica (hot standby) of `primary`, which must run:
        a base backup with the WAL streamed alongside, and `-R` writes standby.signal and the
        primary_conninfo. initdb's pg_hba.conf trusts replication connections from
        127.0.0.1, and PostgreSQL 15's defaults (wal_level=replica, max_wal_senders=10) allow
        them."""
        self._run(
            "pg_basebackup",
            "-h",
            "127.0.0.1",
            "-p",
            str(primary.port),
            "-U",
            "postgres",
            "-D",
            str(self.directory / "data"),
            "-R",
            "-X",
            "stream",
            "--no-sync",
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        for name, value in self.settings.items():
            options += f" -c {name}={value}"
        self._run(
            "pg_ctl",
            "-D",
            str(self.directory / "data"),
            "-o",
            options,
            "-l",
            str(self.log),
            "-w",
            "start",
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.directory / "data"), "-m", "fast", "-w", "stop")


def _directory() -> Path:
    directory = Path(tempfile.mkdtemp(prefix="pomreport-cluster-"))
    directory.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    return directory


@contextlib.contextmanager
def own_cluster(settings: dict[str, str] | None = None) -> Iterator[OwnCluster]:
    """A started cluster of the test's own, removed afterwards."""
    cluster = OwnCluster(_directory(), free_port(), settings)
    try:
        cluster.create()
        cluster.start()
        yield cluster
    finally:
        _remove(cluster)


@contextlib.contextmanager
def own_replica(
    primary: OwnCluster, settings: dict[str, str] | None = None
) -> Iterator[OwnCluster]:
    """A started streaming replica of `primary` (a cluster of the test's own), removed
    afterwards."""
    replica = OwnCluster(_directory(), free_port(), settings)
    try:
        replica.create_replica_of(primary)
        replica.start()
        yield replica
    finally:
        _remove(replica)


def _remove(cluster: OwnCluster) -> None:
    # Stopped whether or not it runs (pg_ctl fails on a stopped one), then its files go.
    with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
        cluster.stop()
    shutil.rmtree(cluster.directory, ignore_errors=True)
