"""The wheel, built from the repository's files and installed in a new virtualenv outside the
checkout, migrates, seeds and serves on its own: Alembic's scripts ship inside it.

Installing the wheel's dependencies needs a package index (or pip's cache). Without one the
tests skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from service.web.assets import VENDOR_FILES
from tests.auth.test_api_keys import _serving

pytestmark = pytest.mark.packaging

REPOSITORY = Path(__file__).resolve().parents[1]
SCRIPTS = "service/db/migration_scripts"
VENDOR = "service/web/vendor"
REPORT = "{ callbacksScheduledDetails(timePeriod: {preset: ALL}) { totalRecords } }"
# What pip prints when it cannot reach an index, as opposed to a failing install.
OFFLINE = re.compile(
    r"NewConnectionError|Max retries exceeded|Temporary failure in name resolution"
    r"|Network is unreachable|Connection refused|ProxyError|ConnectTimeout|Read timed out"
)


def _run(
    command: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, capture_output=True, text=True, cwd=cwd, env=env, timeout=120, check=False
    )


def _tracked(*folders: str) -> list[str]:
    listed = subprocess.run(
        ["git", "-C", str(REPOSITORY), "ls-files", "-z", "--", *folders],
        capture_output=True,
        text=True,
        check=True,
    )
    return [name for name in listed.stdout.split("\0") if name]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A wheel built from a copy of the tracked files, so the checkout gets no build output."""
    copy = tmp_path_factory.mktemp("source")
    # GraphiQL's files are not in git: `make install` fetches them, as a release build would
    # before building its wheel.
    vendored = [f"{VENDOR}/{name}" for name in VENDOR_FILES]
    for name in [*_tracked("service", "migrations"), *vendored, "pyproject.toml", "README.md"]:
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPOSITORY / name, copy / name)
    wheels = tmp_path_factory.mktemp("wheels")
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    built = _run([*pip_wheel, "--quiet", "-w", str(wheels), str(copy)])
    assert built.returncode == 0, built.stdout + built.stderr
    (path,) = wheels.glob("pomreport-*.whl")
    yield path
    shutil.rmtree(copy)
    shutil.rmtree(wheels)


@dataclass
class Installed:
    """A new virtualenv holding the wheel, and how to run its commands away from the checkout."""

    venv: Path
    workdir: Path
    environment: dict[str, str]
    database_url: str

    def run(self, *command: str) -> subprocess.CompletedProcess[str]:
        return _run(list(command), cwd=self.workdir, env=self.environment)


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    root = tmp_path_factory.mktemp("installed")
    venv = root / "venv"
    created = _run([sys.executable, "-m", "venv", str(venv)])
    assert created.returncode == 0, created.stderr
    pip_install = [str(venv / "bin" / "pip"), "install", "--quiet", "--timeout", "30"]
    pip = _run(
        [*pip_install, "--retries", "2", "-c", str(REPOSITORY / "constraints.txt"), str(wheel)]
    )
    if pip.returncode != 0:
        output = "\n".join((pip.stdout + pip.stderr).splitlines()[-20:])
        if not OFFLINE.search(output):
            pytest.fail(f"pip could not install the wheel:\n{output}")
        message = f"pip cannot reach a package index for the wheel's dependencies:\n{output}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true, so the packaging tests must run: {message}")
        pytest.skip(message)
    workdir = root / "elsewhere"
    workdir.mkdir()
    # Nothing that points back at the checkout or configures the service differently.
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "DATABASE_URL", "REDIS_URL"}
        and not key.startswith("POMREPORT_")
    }
    database_url = f"sqlite:///{root / 'fresh.db'}"
    environment["DATABASE_URL"] = database_url
    yield Installed(venv.resolve(), workdir, environment, database_url)
    shutil.rmtree(root)


def test_packaging_wheel_holds_every_tracked_module_and_migration_script(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    expected = set(_tracked("service")) | {
        f"{SCRIPTS}/{name.removeprefix('migrations/')}" for name in _tracked("migrations")
    }
    expected |= {f"{VENDOR}/{name}" for name in VENDOR_FILES}
    assert {f"{SCRIPTS}/env.py", f"{SCRIPTS}/script.py.mako"} <= expected
    assert any(name.startswith(f"{SCRIPTS}/versions/") for name in expected)
    assert sorted(expected - names) == []
    assert not any(name.startswith("migrations/") for name in names)


def test_packaging_installed_wheel_imports_itself_from_its_venv(installed: Installed) -> None:
    located = installed.run(
        str(installed.venv / "bin" / "python"),
        "-c",
        "import service, service.db.migrations as m; print(service.__file__); "
        "print(m.script_directory())",
    )
    assert located.returncode == 0, located.stderr
    package, scripts = (Path(line).resolve() for line in located.stdout.splitlines())
    for path in (package, scripts):
        assert path.is_relative_to(installed.venv), path
        assert not path.is_relative_to(REPOSITORY), path
    assert scripts == package.parent / "db" / "migration_scripts"
    assert (scripts / "env.py").is_file()
    assert (scripts / "script.py.mako").is_file()
    shipped = {path.name for path in (scripts / "versions").glob("*.py")}
    assert shipped == {path.name for path in (REPOSITORY / "migrations" / "versions").glob("*.py")}


def test_packaging_installed_wheel_migrates_seeds_and_serves(installed: Installed) -> None:
    pomreport = str(installed.venv / "bin" / "pomreport")
    migrated = installed.run(pomreport, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    seeded = installed.run(pomreport, "seed", "--callbacks", "1000")
    assert seeded.returncode == 0, seeded.stderr
    assert "seeded 1,000 callbacks" in seeded.stdout
    with _serving(
        installed.database_url,
        "--host",
        "127.0.0.1",
        program=[pomreport],
        environment=installed.environment,
        cwd=installed.workdir,
    ) as served:
        deadline = time.monotonic() + 30
        while httpx.get(f"{served.base_url}/readyz", timeout=5).status_code != 200:
            assert time.monotonic() < deadline, "serve did not become ready"
            time.sleep(0.1)
        response = httpx.post(f"{served.base_url}/graphql", json={"query": REPORT}, timeout=30)
    assert "OPEN DEVELOPMENT MODE" in served.stderr
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body["errors"]
    assert body["data"]["callbacksScheduledDetails"]["totalRecords"] == 1000
