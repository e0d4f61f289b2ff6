"""API key management (the `pomreport apikey` commands), the key registry, and `serve`'s
secure-by-default start."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.testclient import TestClient

from service.app import create_app
from service.auth.api_keys import (
    OPEN_DEVELOPMENT_PRINCIPAL,
    ApiKeyRegistry,
    create_api_key,
    revoke_api_key,
)
from service.cli import is_loopback
from service.db.models.api_key import ApiKey, Role
from service.errors import UnauthenticatedError
from service.settings import Settings, parse_database_url
from tests.conftest import SqliteDatabases
from tests.serve_process import free_port
from tests.test_cli import _pomreport


def test_apikey_create_prints_the_key_once_and_stores_only_its_hash(database_url: URL) -> None:
    url = database_url.render_as_string(hide_password=False)
    created = _pomreport(
        "apikey", "create", "--role", "agent", "--agent-id", "A1001", "--name", "Ann's desk",
        database_url=url,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("pomr_")
    assert len(key) > 40
    assert "shown once" in created.stderr
    assert "no agent A1001 in the database yet" in created.stderr  # the database is empty
    assert key not in created.stderr

    listing = _pomreport("apikey", "list", database_url=url)
    assert listing.returncode == 0
    assert key[:12] in listing.stdout
    assert key not in listing.stdout
    assert "agent" in listing.stdout
    assert "A1001" in listing.stdout
    assert "Ann's desk" in listing.stdout

    revoked = _pomreport("apikey", "revoke", "1", database_url=url)
    assert revoked.returncode == 0, revoked.stderr
    again = _pomreport("apikey", "revoke", "1", database_url=url)
    assert again.returncode == 1
    assert "already revoked" in again.stderr
    unknown = _pomreport("apikey", "revoke", "99", database_url=url)
    assert unknown.returncode == 1
    assert "no API key 99" in unknown.stderr


async def test_the_database_holds_the_keys_hash_never_the_key(
    session_maker: async_sessionmaker[AsyncSession],
) -> None:
    row, key = await create_api_key(session_maker, Role.VIEWER, name="wallboard")
    async with session_maker() as session:
        stored = (await session.scalars(select(ApiKey))).one()
    assert stored.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert key not in (stored.key_hash, stored.key_prefix, stored.name)
    assert key.startswith(stored.key_prefix)
    assert stored.id == row.id


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        pytest.param(["--role", "agent"], "an agent key needs --agent-id", id="agent-without-id"),
        pytest.param(
            ["--role", "viewer", "--agent-id", "A1"], "only agent keys name an agent", id="id"
        ),
    ],
)
def test_apikey_create_refuses_a_role_and_agent_that_do_not_fit(
    sqlite_database_url: str, arguments: list[str], message: str
) -> None:
    result = _pomreport("apikey", "create", *arguments, database_url=sqlite_database_url)
    assert result.returncode == 1
    assert message in result.stderr
    assert result.stdout == ""


def test_apikey_create_rejects_an_unknown_role() -> None:
    result = _pomreport("apikey", "create", "--role", "root")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


@pytest.fixture
def sqlite_database_url(sqlite_databases: SqliteDatabases) -> Iterator[str]:
    """A migrated SQLite database, for checks that do not depend on the store."""
    url = sqlite_databases.create(migrated=True)
    yield url.render_as_string(hide_password=False)
    sqlite_databases.drop(url)


class FakeClock:
    """Seconds that pass only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_new_key_works_at_once_and_a_revoked_one_stops_within_the_cache_time(
    session_maker: async_sessionmaker[AsyncSession],
) -> None:
    clock = FakeClock()
    registry = ApiKeyRegistry(session_maker, open_without_keys=False, cache_seconds=10, clock=clock)
    await registry.start()
    with pytest.raises(UnauthenticatedError):
        await registry.authenticate(None)
    row, key = await create_api_key(session_maker, Role.AGENT, agent_id="A7")
    principal = await registry.authenticate(f"Bearer {key}")
    assert (principal.role, principal.agent_id, principal.key_id) == (Role.AGENT, "A7", row.id)
    assert principal.row_scope.agent_id == "A7"

    await revoke_api_key(session_maker, row.id)
    clock.now += 9
    assert await registry.authenticate(f"bearer {key}") == principal  # still trusted
    clock.now += 2
    with pytest.raises(UnauthenticatedError, match="not valid"):
        await registry.authenticate(f"Bearer {key}")


async def test_open_development_mode_ends_when_the_first_key_is_created(
    session_maker: async_sessionmaker[AsyncSession],
) -> None:
    clock = FakeClock()
    registry = ApiKeyRegistry(session_maker, open_without_keys=True, cache_seconds=10, clock=clock)
    await registry.start()
    assert registry.is_open
    assert await registry.authenticate(None) is OPEN_DEVELOPMENT_PRINCIPAL
    with pytest.raises(UnauthenticatedError):
        await registry.authenticate("Bearer pomr_wrong")  # a wrong key is wrong, even here

    await create_api_key(session_maker, Role.ADMIN)
    clock.now += 10
    with pytest.raises(UnauthenticatedError):
        await registry.authenticate(None)
    assert not registry.is_open


async def test_revoking_every_key_does_not_reopen_a_server(
    session_maker: async_sessionmaker[AsyncSession],
) -> None:
    row, _key = await create_api_key(session_maker, Role.VIEWER)
    await revoke_api_key(session_maker, row.id)
    registry = ApiKeyRegistry(session_maker, open_without_keys=True, cache_seconds=0)
    await registry.start()
    assert not registry.is_open
    with pytest.raises(UnauthenticatedError):
        await registry.authenticate(None)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("pomreport.example.com", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_serve_refuses_a_public_address_without_keys(sqlite_database_url: str) -> None:
    result = _pomreport(
        "serve", "--host", "0.0.0.0", "--port", "1", database_url=sqlite_database_url
    )
    assert result.returncode == 1
    assert "no API key exists" in result.stderr
    assert "--allow-unauthenticated" in result.stderr
    assert "Traceback" not in result.stderr


@dataclass
class Served:
    """A `pomreport serve` process: where it listens, and what it printed once stopped."""

    base_url: str
    stderr: str = ""


@contextlib.contextmanager
def _serving(
    database_url: str,
    *arguments: str,
    program: Sequence[str] = (sys.executable, "-m", "service.cli"),
    environment: Mapping[str, str] = os.environ,
    cwd: Path | None = None,
) -> Iterator[Served]:
    port = free_port()
    process = subprocess.Popen(
        [*program, "serve", "--port", str(port), *arguments],
        env={**environment, "DATABASE_URL": database_url},
        cwd=cwd,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    served = Served(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 30
        while process.poll() is None:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{served.base_url}/healthz", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, "serve did not start"
            time.sleep(0.1)
        assert process.poll() is None, "serve exited"
        yield served
    finally:
        process.terminate()
        served.stderr = process.communicate(timeout=10)[1]


QUERY = {"query": "{ agents { totalCount } }"}


def test_serve_with_the_override_runs_open_and_says_so_loudly(sqlite_database_url: str) -> None:
    with _serving(sqlite_database_url, "--host", "0.0.0.0", "--allow-unauthenticated") as served:
        response = httpx.post(f"{served.base_url}/graphql", json=QUERY, timeout=5)
        assert response.json() == {"data": {"agents": {"totalCount": 0}}}
    assert "OPEN DEVELOPMENT MODE" in served.stderr


def test_serve_on_loopback_with_a_key_requires_it(sqlite_database_url: str) -> None:
    created = _pomreport("apikey", "create", "--role", "viewer", database_url=sqlite_database_url)
    key = created.stdout.strip()
    with _serving(sqlite_database_url, "--host", "127.0.0.1") as served:
        refused = httpx.post(f"{served.base_url}/graphql", json=QUERY, timeout=5)
        assert refused.status_code == 401
        allowed = httpx.post(
            f"{served.base_url}/graphql",
            json=QUERY,
            headers={"Authorization": f"Bearer {key}"},
            timeout=5,
        )
        assert allowed.json() == {"data": {"agents": {"totalCount": 0}}}
    assert "OPEN DEVELOPMENT MODE" not in served.stderr


@pytest.mark.parametrize("open_without_keys", [False, True], ids=["keys-required", "open-mode"])
def test_authentication_against_an_unreachable_database_is_service_unavailable(
    open_without_keys: bool,
) -> None:
    unreachable = parse_database_url("postgresql://postgres@127.0.0.1:1/test")
    settings = Settings(
        database_url=unreachable, open_without_keys=open_without_keys, expiry_sweep_seconds=0
    )
    with TestClient(create_app(settings)) as client:
        with_key = client.post("/graphql", json=QUERY, headers={"Authorization": "Bearer pomr_x"})
        assert with_key.status_code == 503
        assert with_key.json()["errors"][0]["extensions"] == {"code": "SERVICE_UNAVAILABLE"}
        without_key = client.post("/graphql", json=QUERY)
        # Keys required: refused at once. Open mode: whether keys exist cannot be known.
        assert without_key.status_code == (503 if open_without_keys else 401)
        assert "127.0.0.1:1" not in without_key.text
