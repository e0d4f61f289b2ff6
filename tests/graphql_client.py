"""A served API over seeded data, with a count of the SQL statements each request runs.

The fixtures are registered in tests/conftest.py."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import httpx2
import pytest
from sqlalchemy import event
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.testclient import TestClient

from service.app import create_app
from service.db.engines import create_engine, create_session_maker
from service.seed.bulk_insert import seed_database
from service.seed.demo_data import SeedPlan
from service.settings import Settings

SEED_AS_OF = dt.datetime(2026, 11, 29, 3, tzinfo=dt.UTC)
SEED_PLAN = SeedPlan(callbacks=1200, seed=9, as_of=SEED_AS_OF)


@dataclass
class GraphQLClient:
    """Posts GraphQL requests to the app and counts the statements each one runs."""

    client: TestClient
    # Whether queries take the compiled path (service.compiled).
    compiled: bool = True
    statements: list[str] = field(default_factory=list)
    # Connections taken from the pool and transactions begun, per request.
    checkouts: int = 0
    transactions: int = 0
    # Sent with every request, e.g. an Authorization header.
    headers: dict[str, str] = field(default_factory=dict)
    # What a client of the GraphQL-over-HTTP spec accepts: request errors come back as 4xx.
    accept: str = "application/graphql-response+json, application/json;q=0.9"

    @property
    def report_statements(self) -> int:
        """The statements a compiled report page with attempts and its total runs: page and
        total on PostgreSQL (the attempts come in each row), attempts apart on SQLite."""
        app: Any = self.client.app
        return 2 if app.state.engine.dialect.name == "postgresql" else 3

    def post(self, query: str, variables: dict[str, Any] | None = None) -> httpx2.Response:
        """Run a request; return the HTTP response."""
        self.statements.clear()
        self.checkouts = self.transactions = 0
        return self.client.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers={"accept": self.accept, **self.headers},
        )

    def execute(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run a request; return the whole response body (data and errors)."""
        body: dict[str, Any] = self.post(query, variables).json()
        return body

    def data(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run a request that must succeed; return its data."""
        body = self.execute(query, variables)
        assert "errors" not in body, body["errors"]
        data: dict[str, Any] = body["data"]
        return data


@pytest.fixture
def seeded_database_url(database_url: URL) -> URL:
    asyncio.run(seed_database(database_url, SEED_PLAN, progress=lambda _message: None))
    return database_url


@pytest.fixture
def graphql(seeded_database_url: URL) -> Iterator[GraphQLClient]:
    """The API over seeded demo data."""
    yield from serve_graphql(_seeded_settings(seeded_database_url))


@pytest.fixture(params=["compiled", "general"])
def both_paths_graphql(
    seeded_database_url: URL, request: pytest.FixtureRequest
) -> Iterator[GraphQLClient]:
    """The API over seeded demo data, once with the compiled path and once without (the
    client's `compiled` says which)."""
    settings = _seeded_settings(seeded_database_url)
    yield from serve_graphql(
        dataclasses.replace(settings, compiled_execution=request.param == "compiled")
    )


def _seeded_settings(database_url: URL) -> Settings:
    return Settings(
        database_url=database_url,
        max_page_size=500,
        expiry_sweep_seconds=0,
        open_without_keys=True,
        # Open mode is settled at start; no re-check may add a statement to a count.
        api_key_cache_seconds=3600,
    )


@pytest.fixture
def empty_graphql(database_url: URL) -> Iterator[GraphQLClient]:
    """The API over an empty, migrated database; the sweeper is off so tests control expiry."""
    yield from serve_graphql(
        Settings(
            database_url=database_url,
            expiry_sweep_seconds=0,
            open_without_keys=True,
            api_key_cache_seconds=3600,
        )
    )


def serve_graphql(settings: Settings) -> Iterator[GraphQLClient]:
    """Run the app in-process for one test, counting statements."""
    with TestClient(create_app(settings)) as client:
        api = GraphQLClient(client, compiled=settings.compiled_execution)

        def count(_connection: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            api.statements.append(statement)

        def checkout(*_args: Any) -> None:
            api.checkouts += 1

        def begin(*_args: Any) -> None:
            api.transactions += 1

        engine = client.app.state.engine.sync_engine  # type: ignore[attr-defined]
        event.listen(engine, "before_cursor_execute", count)
        event.listen(engine, "begin", begin)
        event.listen(engine.pool, "checkout", checkout)
        yield api


@contextlib.asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    """The app started in-process, and an async client that calls it without a network, for
    tests that send requests concurrently."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://pomreport") as client:
            yield app, client


async def post(
    client: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Post a GraphQL request; return the response body."""
    response = await client.post("/graphql", json={"query": query, "variables": variables})
    body: dict[str, Any] = response.json()
    return body


ResultT = TypeVar("ResultT")


def on_database(
    url: URL, action: Callable[[async_sessionmaker[AsyncSession]], Awaitable[ResultT]]
) -> ResultT:
    """Run `action` with sessions on the database at `url`, from synchronous test code."""

    async def run() -> ResultT:
        engine = create_engine(url)
        try:
            return await action(create_session_maker(engine))
        finally:
            await engine.dispose()

    return asyncio.run(run())
