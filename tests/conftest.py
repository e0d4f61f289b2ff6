"""Databases for tests: every test that asks for one gets its own, on SQLite and on PostgreSQL.

PostgreSQL runs when POMREPORT_TEST_POSTGRESQL_URL names a server database to connect through
(e.g. postgresql://postgres@127.0.0.1:5432/test); each test then gets a database of its own,
copied from a migrated template, and drops it afterwards. Without the variable the PostgreSQL
variants are skipped, except under CI=true, where they fail.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from service.db.engines import create_engine, create_session_maker
from service.db.migrations import upgrade_to_head
from service.settings import parse_database_url
from tests.graphql_client import (
    both_paths_graphql,
    empty_graphql,
    graphql,
    seeded_database_url,
)

__all__ = ["both_paths_graphql", "empty_graphql", "graphql", "seeded_database_url"]

POSTGRESQL_URL_VARIABLE = "POMREPORT_TEST_POSTGRESQL_URL"
STORES = ["sqlite", "postgresql"]


def _postgresql_server_url() -> URL:
    raw = os.environ.get(POSTGRESQL_URL_VARIABLE)
    if raw:
        return parse_database_url(raw)
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {POSTGRESQL_URL_VARIABLE} is not set: PostgreSQL is required")
    pytest.skip(f"set {POSTGRESQL_URL_VARIABLE} to run the PostgreSQL variant")


def _asyncpg_dsn(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def _run_admin(server_url: URL, *statements: str) -> None:
    connection = await asyncpg.connect(_asyncpg_dsn(server_url), timeout=10)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


class PostgresqlDatabases:
    """Creates and drops uniquely named databases on the test server."""

    def __init__(self, server_url: URL) -> None:
        self.server_url = server_url
        self.prefix = f"pomreport_test_{uuid.uuid4().hex[:8]}"
        self._template: str | None = None

    def create(self, *, migrated: bool) -> URL:
        name = f"{self.prefix}_{uuid.uuid4().hex[:8]}"
        template = f" TEMPLATE {self.template()}" if migrated else ""
        asyncio.run(_run_admin(self.server_url, f'CREATE DATABASE "{name}"{template}'))
        return self.server_url.set(database=name)

    def drop(self, url: URL) -> None:
        asyncio.run(
            _run_admin(self.server_url, f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
        )

    def template(self) -> str:
        """A database built by the migrations once per run; tests get copies of it."""
        if self._template is None:
            name = f"{self.prefix}_template"
            asyncio.run(_run_admin(self.server_url, f'CREATE DATABASE "{name}"'))
            self._template = name
            upgrade_to_head(self.server_url.set(database=name))
        return self._template

    def close(self) -> None:
        if self._template is not None:
            asyncio.run(
                _run_admin(
                    self.server_url, f'DROP DATABASE IF EXISTS "{self._template}" WITH (FORCE)'
                )
            )


class SqliteDatabases:
    """Creates SQLite files in the run's temporary directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._template: Path | None = None

    def create(self, *, migrated: bool) -> URL:
        path = self.directory / f"{uuid.uuid4().hex[:12]}.db"
        if migrated:
            shutil.copyfile(self.template(), path)
        return parse_database_url(f"sqlite:///{path}")

    def drop(self, url: URL) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{url.database}{suffix}").unlink(missing_ok=True)

    def template(self) -> Path:
        if self._template is None:
            path = self.directory / "template.db"
            upgrade_to_head(parse_database_url(f"sqlite:///{path}"))
            self._template = path
        return self._template


@pytest.fixture(scope="session")
def sqlite_databases(tmp_path_factory: pytest.TempPathFactory) -> SqliteDatabases:
    return SqliteDatabases(tmp_path_factory.mktemp("databases"))


@pytest.fixture(scope="session")
def postgresql_databases() -> Iterator[PostgresqlDatabases]:
    databases = PostgresqlDatabases(_postgresql_server_url())
    yield databases
    databases.close()


def _databases(
    request: pytest.FixtureRequest,
) -> SqliteDatabases | PostgresqlDatabases:
    if request.param == "sqlite":
        databases: SqliteDatabases | PostgresqlDatabases = request.getfixturevalue(
            "sqlite_databases"
        )
        return databases
    return request.getfixturevalue("postgresql_databases")  # type: ignore[no-any-return]


@pytest.fixture(params=STORES)
def database_url(request: pytest.FixtureRequest) -> Iterator[URL]:
    """A migrated database of this test's own, on each store."""
    databases = _databases(request)
    url = databases.create(migrated=True)
    yield url
    databases.drop(url)


@pytest.fixture(params=STORES)
def empty_database_url(request: pytest.FixtureRequest) -> Iterator[URL]:
    """An empty database (no tables) of this test's own, on each store."""
    databases = _databases(request)
    url = databases.create(migrated=False)
    yield url
    databases.drop(url)


@pytest.fixture
async def engine(database_url: URL) -> AsyncIterator[AsyncEngine]:
    """The service's engine on this test's database."""
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def session_maker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_session_maker(engine)
