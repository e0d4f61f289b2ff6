"""Fixtures of the tests where instances share events (PostgreSQL only)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import URL

from tests.conftest import PostgresqlDatabases


@pytest.fixture
def postgresql_url(postgresql_databases: PostgresqlDatabases) -> Iterator[URL]:
    """Instances share events through PostgreSQL or Redis, so this runs on PostgreSQL only."""
    url = postgresql_databases.create(migrated=True)
    yield url
    postgresql_databases.drop(url)


@pytest.fixture(params=["postgresql-notify", "redis"])
def transport_environment(request: pytest.FixtureRequest) -> dict[str, str]:
    if request.param == "redis":
        return {
            "REDIS_URL": os.environ.get("POMREPORT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
            # Names of the test's own: other tests' changes must not reach its instances.
            "POMREPORT_REDIS_PREFIX": f"pomreport-test:{uuid.uuid4().hex}:",
        }
    return {}
