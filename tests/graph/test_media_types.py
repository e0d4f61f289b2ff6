"""GraphQL over HTTP's media types: application/graphql-response+json for clients that accept
it (request errors are 4xx there), application/json for the rest (200 whatever the errors)."""

from __future__ import annotations

from typing import Any

import pytest

from service.media_types import (
    GRAPHQL_RESPONSE_JSON,
    JSON,
    response_media_type,
    wants_stream,
    without_streams,
)
from tests.graphql_client import GraphQLClient

MODERN = GRAPHQL_RESPONSE_JSON
REPORT = "{ callbacksScheduledDetails(timePeriod: {preset: ALL}) { totalRecords } }"


@pytest.mark.parametrize(
    ("accept", "media_type"),
    [
        (None, JSON),
        ("", JSON),
        ("*/*", JSON),
        ("application/json", JSON),
        ("application/graphql-response+json", MODERN),
        ("application/graphql-response+json, application/json", MODERN),
        ("application/json, application/graphql-response+json", JSON),
        ("application/json;q=0.9, application/graphql-response+json", MODERN),
        ("application/graphql-response+json;q=0, application/json", JSON),
        ("application/graphql-response+json;charset=utf-8", MODERN),
        ("text/html, application/*;q=0.8", JSON),
        ("application/graphql-response+json;q=oops, application/json", JSON),
        ("application/graphql-response+json;q=nan, application/json;q=0.5", JSON),
        ("application/graphql-response+json;q=2, application/json;q=0.5", JSON),
        ("APPLICATION/GRAPHQL-RESPONSE+JSON", MODERN),
    ],
)
def test_response_media_type_follows_accept(accept: str | None, media_type: str) -> None:
    assert response_media_type(accept) == media_type


def test_streams_are_recognised() -> None:
    assert wants_stream("text/event-stream")
    assert wants_stream("multipart/mixed;subscriptionSpec=1.0, application/json")
    assert not wants_stream("application/graphql-response+json, application/json")
    assert not wants_stream("text/event-stream;q=0, application/json")


@pytest.mark.parametrize(
    ("query", "variables", "code"),
    [
        ("{ callbacks(", None, "GRAPHQL_PARSE_FAILED"),
        ("{ noSuchField }", None, "GRAPHQL_VALIDATION_FAILED"),
        ("query($n: Int) { agents(first: $n) { totalCount } }", {"n": "x"}, "BAD_USER_INPUT"),
        ("{ callbacks(first: 501) { totalCount } }", None, "BAD_USER_INPUT"),
    ],
)
@pytest.mark.parametrize(("accept", "status"), [(MODERN, 400), (JSON, 200), ("*/*", 200)])
def test_request_errors_are_4xx_only_under_the_graphql_response_type(
    empty_graphql: GraphQLClient,
    query: str,
    variables: dict[str, object] | None,
    code: str,
    accept: str,
    status: int,
) -> None:
    empty_graphql.accept = accept
    response = empty_graphql.post(query, variables)
    assert response.status_code == status
    assert response.headers["content-type"] == response_media_type(accept)
    body = response.json()
    assert "data" not in body
    assert body["errors"][0]["extensions"]["code"] == code


@pytest.mark.parametrize("accept", [MODERN, JSON])
def test_answers_carry_the_accepted_type_on_both_paths(graphql: GraphQLClient, accept: str) -> None:
    graphql.accept = accept
    for _ in range(3):  # the first plans the query; the others take the compiled endpoint
        response = graphql.post(REPORT)
        assert response.status_code == 200
        assert response.headers["content-type"] == accept
        assert response.json()["data"]["callbacksScheduledDetails"]["totalRecords"] > 0
    app: Any = graphql.client.app
    assert app.state.compiled_queries.answered_directly == 2


@pytest.mark.parametrize("accept", [MODERN, JSON])
def test_malformed_requests_are_4xx_in_the_accepted_type(
    empty_graphql: GraphQLClient, accept: str
) -> None:
    response = empty_graphql.client.post(
        "/graphql",
        content=b'{"query":',
        headers={"content-type": "application/json", "accept": accept},
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == accept
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


@pytest.mark.parametrize(
    ("accept", "narrowed"),
    [
        ("text/event-stream, application/json", "application/json"),
        ("multipart/mixed;subscriptionSpec=1.0, application/json", "application/json"),
        ("text/event-stream", None),
        ("multipart/mixed;deferSpec=20220824", None),
    ],
)
def test_streams_can_be_left_out_when_json_remains(accept: str, narrowed: str | None) -> None:
    assert without_streams(accept) == narrowed


@pytest.mark.parametrize(
    "accept",
    [
        "application/json, text/event-stream",
        "multipart/mixed;subscriptionSpec=1.0, application/json",
        "multipart/mixed;deferSpec=20220824, application/graphql-response+json, application/json",
    ],
)
@pytest.mark.parametrize("method", ["POST", "GET"])
def test_a_query_accepting_a_stream_and_json_is_answered_in_json(
    graphql: GraphQLClient, accept: str, method: str
) -> None:
    """A stream of one result helps nobody, and clients that list a stream type on every
    request (for @defer, or subscriptions over HTTP) expect JSON for their queries."""
    for _ in range(2):  # planned, then from the compiled endpoint
        if method == "POST":
            response = graphql.client.post(
                "/graphql", json={"query": REPORT}, headers={"accept": accept}
            )
        else:
            response = graphql.client.get(
                "/graphql", params={"query": REPORT}, headers={"accept": accept}
            )
        assert response.status_code == 200
        assert response.headers["content-type"] == response_media_type(without_streams(accept))
        assert response.json()["data"]["callbacksScheduledDetails"]["totalRecords"] > 0
