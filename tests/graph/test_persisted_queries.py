"""Automatic persisted queries, as Apollo's clients use them: a hash first, the document when
the service does not know it, the hash alone from then on, on every instance over the
database."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from sqlalchemy import URL

from service.media_types import GRAPHQL_RESPONSE_JSON, JSON
from tests.auth.test_authorization import SecuredService, secured
from tests.graphql_client import GraphQLClient, _seeded_settings, serve_graphql

__all__ = ["secured"]  # the fixture, used here too

REPORT = "{ callbacksScheduledDetails(timePeriod: {preset: ALL}) { totalRecords } }"


def _hash(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


def _extensions(document: str, version: object = 1) -> dict[str, Any]:
    return {"persistedQuery": {"version": version, "sha256Hash": _hash(document)}}


@pytest.fixture
def other_instance(seeded_database_url: URL) -> Iterator[GraphQLClient]:
    """A second instance of the service over the same database, with its own caches."""
    yield from serve_graphql(_seeded_settings(seeded_database_url))


def _post(
    api: GraphQLClient, body: dict[str, Any], *, accept: str | None = None
) -> httpx2.Response:
    api.statements.clear()
    return api.client.post(
        "/graphql", json=body, headers={"accept": accept or api.accept, **api.headers}
    )


def _get(api: GraphQLClient, parameters: dict[str, str]) -> httpx2.Response:
    api.statements.clear()
    return api.client.get(
        "/graphql", params=parameters, headers={"accept": api.accept, **api.headers}
    )


def _code(response: httpx2.Response) -> str:
    code: str = response.json()["errors"][0]["extensions"]["code"]
    return code


@pytest.mark.parametrize(
    ("accept", "not_found_status"), [(JSON, 200), (GRAPHQL_RESPONSE_JSON, 400)]
)
def test_persisted_query_follows_apollos_client_flow_across_instances(
    graphql: GraphQLClient, other_instance: GraphQLClient, accept: str, not_found_status: int
) -> None:
    first = _post(graphql, {"extensions": _extensions(REPORT)}, accept=accept)
    assert first.status_code == not_found_status
    assert first.headers["content-type"] == accept
    assert first.json() == {
        "errors": [
            {
                "message": "PersistedQueryNotFound",
                "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"},
            }
        ]
    }
    assert len(graphql.statements) == 1  # the lookup

    registered = _post(graphql, {"query": REPORT, "extensions": _extensions(REPORT)}, accept=accept)
    assert registered.status_code == 200
    total = registered.json()["data"]["callbacksScheduledDetails"]["totalRecords"]
    assert total > 0

    for api in (graphql, other_instance):
        again = _post(api, {"extensions": _extensions(REPORT)}, accept=accept)
        assert again.status_code == 200
        assert again.json() == {"data": {"callbacksScheduledDetails": {"totalRecords": total}}}


def test_persisted_report_query_takes_the_compiled_path(graphql: GraphQLClient) -> None:
    app: Any = graphql.client.app
    compiled = app.state.compiled_queries
    assert _post(graphql, {"query": REPORT, "extensions": _extensions(REPORT)}).status_code == 200
    answered, directly = compiled.answered, compiled.answered_directly
    for _ in range(2):
        response = _post(graphql, {"extensions": _extensions(REPORT)})
        assert response.json()["data"]["callbacksScheduledDetails"]["totalRecords"] > 0
    assert compiled.answered == answered + 2
    assert compiled.answered_directly == directly + 2


def test_persisted_query_by_get_runs_queries_only(graphql: GraphQLClient) -> None:
    assert _post(graphql, {"query": REPORT, "extensions": _extensions(REPORT)}).status_code == 200
    response = _get(graphql, {"extensions": json.dumps(_extensions(REPORT))})
    assert response.status_code == 200
    assert response.json()["data"]["callbacksScheduledDetails"]["totalRecords"] > 0

    unknown = "{ __typename }"
    response = _get(graphql, {"extensions": json.dumps(_extensions(unknown))})
    assert _code(response) == "PERSISTED_QUERY_NOT_FOUND"
    response = _get(graphql, {"query": unknown, "extensions": json.dumps(_extensions(unknown))})
    assert response.json() == {"data": {"__typename": "Query"}}

    mutation = "mutation { __typename }"
    response = _post(graphql, {"query": mutation, "extensions": _extensions(mutation)})
    assert response.json() == {"data": {"__typename": "Mutation"}}
    response = _get(graphql, {"extensions": json.dumps(_extensions(mutation))})
    assert response.status_code == 405
    assert _code(response) == "BAD_REQUEST"


def test_persisted_query_whose_hash_is_not_its_documents_is_refused(
    graphql: GraphQLClient,
) -> None:
    response = _post(graphql, {"query": REPORT, "extensions": _extensions("{ __typename }")})
    assert response.status_code == 400
    assert _code(response) == "BAD_REQUEST"
    assert "not the SHA-256 of the query" in response.json()["errors"][0]["message"]
    assert graphql.statements == []
    # Nothing was stored under the hash.
    response = _post(graphql, {"extensions": _extensions("{ __typename }")})
    assert _code(response) == "PERSISTED_QUERY_NOT_FOUND"


def test_persisted_query_with_a_lone_surrogate_is_a_bad_request(graphql: GraphQLClient) -> None:
    # JSON can carry a lone surrogate, which has no UTF-8 text to hash (it was an HTTP 500).
    graphql.statements.clear()
    body = {"query": "{ __typename } \ud800", "extensions": _extensions(REPORT)}
    response = graphql.client.post(
        "/graphql",
        content=json.dumps(body),  # escaped: the client's encoder would refuse the surrogate
        headers={"content-type": "application/json", "accept": graphql.accept, **graphql.headers},
    )
    assert response.status_code == 400
    assert _code(response) == "BAD_REQUEST"
    assert "lone surrogate" in response.json()["errors"][0]["message"]
    assert graphql.statements == []


@pytest.mark.parametrize("version", [2, "1", None])
def test_persisted_query_of_another_version_is_refused(
    graphql: GraphQLClient, version: object
) -> None:
    response = _post(graphql, {"query": REPORT, "extensions": _extensions(REPORT, version)})
    assert response.status_code == 400
    assert _code(response) == "BAD_REQUEST"
    assert "unsupported persisted query version" in response.json()["errors"][0]["message"]


@pytest.mark.parametrize(
    "persisted",
    [{"version": 1}, {"version": 1, "sha256Hash": "xyz"}, "abc", {"version": 1, "sha256Hash": 1}],
)
def test_persisted_query_with_a_malformed_hash_is_refused(
    graphql: GraphQLClient, persisted: object
) -> None:
    response = _post(graphql, {"extensions": {"persistedQuery": persisted}})
    assert response.status_code == 400
    assert _code(response) == "BAD_REQUEST"


def test_persisted_query_costs_one_lookup_then_none(
    graphql: GraphQLClient, other_instance: GraphQLClient
) -> None:
    assert _post(graphql, {"query": REPORT, "extensions": _extensions(REPORT)}).status_code == 200
    # The other instance has its plan ready and its cache empty.
    for _ in range(2):
        plain = _post(other_instance, {"query": REPORT})
    plain_statements = len(other_instance.statements)
    assert plain.status_code == 200

    first = _post(other_instance, {"extensions": _extensions(REPORT)})
    assert first.json() == plain.json()
    assert len(other_instance.statements) == plain_statements + 1
    cached = _post(other_instance, {"extensions": _extensions(REPORT)})
    assert cached.json() == plain.json()
    assert len(other_instance.statements) == plain_statements


def test_persisted_query_without_a_key_is_refused_before_its_lookup(
    secured: SecuredService,
) -> None:
    secured.use("viewer")
    body = {"query": REPORT, "extensions": _extensions(REPORT)}
    assert _post(secured.api, body).status_code == 200
    secured.use("no key")
    lookup = "persisted_query"
    response = _post(secured.api, {"extensions": _extensions(REPORT)})
    assert response.status_code == 401
    assert not any(lookup in statement for statement in secured.api.statements)
    response = _get(secured.api, {"extensions": json.dumps(_extensions(REPORT))})
    assert response.status_code == 401
    assert _code(response) == "UNAUTHENTICATED"
    assert not any(lookup in statement for statement in secured.api.statements)
