from __future__ import annotations

from typing import Any

import pytest

from tests.graphql_client import GraphQLClient


@pytest.mark.parametrize(
    ("query", "variables", "code"),
    [
        pytest.param("{ callbacks { ", None, "GRAPHQL_PARSE_FAILED", id="parse"),
        pytest.param("{ callbacks { nope } }", None, "GRAPHQL_VALIDATION_FAILED", id="field"),
        pytest.param(
            "{ callbacks(filter: {callbackStatus: {eq: PENDING}}) { totalCount } }",
            None,
            "GRAPHQL_VALIDATION_FAILED",
            id="enum-literal",
        ),
        pytest.param(
            "query($n: Int) { callbacks(first: $n) { totalCount } }",
            {"n": "ten"},
            "BAD_USER_INPUT",
            id="variable-type",
        ),
        pytest.param(
            "query($f: CallbackFilter) { callbacks(filter: $f) { totalCount } }",
            {"f": {"creationTime": {"gte": "yesterday"}}},
            "BAD_USER_INPUT",
            id="variable-datetime",
        ),
    ],
)
def test_graphql_errors_carry_a_code(
    graphql: GraphQLClient, query: str, variables: dict[str, Any] | None, code: str
) -> None:
    body = graphql.execute(query, variables)
    assert body["errors"][0]["extensions"]["code"] == code
    assert graphql.statements == []
