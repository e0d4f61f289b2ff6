"""Bounded fuzzing of the served API: generated operations and malformed HTTP bodies.

Whatever comes in: no 5xx, no traceback or file path in a response, and the service still
answers afterwards.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import from_schema, nodes
from starlette.testclient import TestClient

from service.app import create_app
from service.schema import create_schema
from service.settings import Settings
from tests.conftest import SqliteDatabases

SCHEMA = create_schema().as_str()
LEAKS = ("Traceback", 'File "', "/work/", "site-packages", "sqlalchemy", "SELECT ")
DATE_TIMES = st.datetimes(
    min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1), timezones=st.just(dt.UTC)
).map(lambda moment: nodes.String(moment.isoformat()))


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    databases = SqliteDatabases(tmp_path_factory.mktemp("fuzz"))
    settings_ = Settings(
        open_without_keys=True, database_url=databases.create(migrated=True), expiry_sweep_seconds=0
    )
    with TestClient(create_app(settings_), raise_server_exceptions=False) as client:
        yield client


def _assert_sound(status: int, text: str) -> None:
    assert status < 500, text[:500]
    for leak in LEAKS:
        assert leak not in text, f"{leak!r} leaked: {text[:500]}"


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(operation=from_schema(SCHEMA, custom_scalars={"DateTime": DATE_TIMES}))
def test_fuzz_generated_operations_never_fail_the_server(
    client: TestClient, operation: str
) -> None:
    response = client.post("/graphql", json={"query": operation})
    _assert_sound(response.status_code, response.text)


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(
    body=st.one_of(
        st.binary(max_size=300),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=20),
            lambda children: (
                st.lists(children, max_size=4)
                | st.dictionaries(
                    st.sampled_from(["query", "variables", "operationName", "x"]),
                    children,
                    max_size=4,
                )
            ),
            max_leaves=20,
        ).map(lambda value: json.dumps(value).encode()),
    ),
    content_type=st.sampled_from(
        ["application/json", "text/plain", "", "application/graphql-response+json"]
    ),
)
def test_fuzz_malformed_bodies_get_4xx_or_answers(
    client: TestClient, body: bytes, content_type: str
) -> None:
    response = client.post("/graphql", content=body, headers={"content-type": content_type})
    _assert_sound(response.status_code, response.text)


def test_fuzz_leaves_the_service_answering(client: TestClient) -> None:
    response = client.post("/graphql", json={"query": "{ campaigns { totalCount } }"})
    assert isinstance(response.json()["data"]["campaigns"]["totalCount"], int)
