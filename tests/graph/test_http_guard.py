"""Requests that are not valid GraphQL over HTTP get a 4xx with a GraphQL error, never a 500."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from service.app import create_app
from service.settings import Settings
from tests.conftest import SqliteDatabases

QUERY = b'{"query": "{ campaigns { totalCount } }"}'


@contextlib.contextmanager
def open_client(sqlite_databases: SqliteDatabases) -> Iterator[TestClient]:
    """The app on a new migrated SQLite database, open (no keys), without the sweeper; its
    unexpected errors answered as a client would see them (500), not raised."""
    settings = Settings(
        open_without_keys=True,
        database_url=sqlite_databases.create(migrated=True),
        expiry_sweep_seconds=0,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def client(sqlite_databases: SqliteDatabases) -> Iterator[TestClient]:
    with open_client(sqlite_databases) as client:
        yield client


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [
        pytest.param(b"null", "application/json", 400, "must be a JSON object", id="null"),
        pytest.param(b"123", "application/json", 400, "must be a JSON object", id="number"),
        pytest.param(b"[]", "application/json", 400, "batching is off", id="array"),
        pytest.param(b'{"query": "\xff"}', "application/json", 400, "not valid UTF-8", id="utf8"),
        pytest.param(
            b"[" * 100_000 + b"]" * 100_000, "application/json", 400, "nested too deeply", id="deep"
        ),
        pytest.param(b'{"query":', "application/json", 400, "not valid JSON", id="truncated"),
        pytest.param(QUERY, "text/plain", 415, "application/json", id="content-type"),
        pytest.param(b"{}", "application/json", 400, "needs a query", id="no-query"),
        pytest.param(
            b'{"query": "{ campaigns { totalCount } }", "variables": [1]}',
            "application/json",
            400,
            "variables must be a JSON object",
            id="variables",
        ),
        pytest.param(
            b'{"query": "query A { campaigns { totalCount } }", "operationName": "B"}',
            "application/json",
            400,
            'Unknown operation named "B"',
            id="operation-name",
        ),
    ],
)
def test_malformed_post_gets_a_graphql_shaped_4xx(
    client: TestClient, body: bytes, content_type: str, status: int, message: str
) -> None:
    response = client.post("/graphql", content=body, headers={"content-type": content_type})
    assert response.status_code == status
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "BAD_REQUEST"
    assert message in error["message"]


def test_body_over_the_limit_is_413(client: TestClient) -> None:
    body = b'{"query": "' + b" " * 10_000_000 + b'{ campaigns { totalCount } }"}'
    response = client.post("/graphql", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


def test_mutation_with_get_is_405(client: TestClient) -> None:
    response = client.get(
        "/graphql", params={"query": "mutation { expireDueCallbacks { changedCount } }"}
    )
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert "send a POST" in response.json()["errors"][0]["message"]


def test_well_formed_requests_still_pass(client: TestClient) -> None:
    posted = client.post("/graphql", content=QUERY, headers={"content-type": "application/json"})
    assert posted.json() == {"data": {"campaigns": {"totalCount": 0}}}
    fetched = client.get("/graphql", params={"query": "{ campaigns { totalCount } }"})
    assert fetched.json() == {"data": {"campaigns": {"totalCount": 0}}}
    assert "graphiql" in client.get("/graphql", headers={"accept": "text/html"}).text.lower()


def test_repeated_get_parameters_are_refused(client: TestClient) -> None:
    response = client.get(
        "/graphql?query={__typename}&query=mutation{expireDueCallbacks{changedCount}}"
    )
    assert response.status_code == 400
    assert "repeated: query" in response.json()["errors"][0]["message"]


@pytest.mark.parametrize(
    "variables",
    [{"first": "ten"}, {"first": None}, {}],
    ids=["string-for-int", "null-for-non-null", "missing"],
)
def test_variables_of_the_wrong_type_get_a_400(
    client: TestClient, variables: dict[str, object]
) -> None:
    response = client.post(
        "/graphql",
        json={
            "query": "query($first: Int!) { campaigns(first: $first) { totalCount } }",
            "variables": variables,
        },
        headers={"accept": "application/graphql-response+json"},
    )
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "$first" in error["message"]


def test_an_error_while_executing_stays_200_with_its_path(client: TestClient) -> None:
    response = client.post(
        "/graphql", json={"query": '{ campaigns(after: "not-a-cursor") { totalCount } }'}
    )
    assert response.status_code == 200
    error = response.json()["errors"][0]
    assert (error["extensions"]["code"], error["path"]) == ("BAD_USER_INPUT", ["campaigns"])
