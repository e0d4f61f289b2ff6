"""The compiled path's endpoint answers a document whose plan is ready without Strawberry's
pipeline; what depends on the request (its variables, their limits and types) is still
checked on every request, and answers equal the pipeline's."""

from __future__ import annotations

from typing import Any

from tests.graphql_client import GraphQLClient

NESTED = """
query Nested($n: Int) {
  campaigns(first: $n) { edges { node { name
    callbacks(first: $n) { totalCount edges { node { callbackId
      attempts { attemptTime systemCompletionCode } } } } } } }
}
"""


def _directly(graphql: GraphQLClient) -> int:
    app: Any = graphql.client.app
    answered: int = app.state.compiled_queries.answered_directly
    return answered


def test_a_ready_plan_is_answered_directly_with_the_pipelines_answer(
    graphql: GraphQLClient,
) -> None:
    first = graphql.execute(NESTED, {"n": 3})
    assert _directly(graphql) == 0  # planned on the way through Strawberry
    statements = len(graphql.statements)
    again = graphql.execute(NESTED, {"n": 3})
    assert _directly(graphql) == 1
    assert again == first
    assert "errors" not in again
    # The same statements: campaigns' page; their callbacks' pages and counts (and, on
    # SQLite, the callbacks' attempts).
    assert len(graphql.statements) == statements
    other = graphql.execute(NESTED, {"n": 2})
    assert _directly(graphql) == 2
    assert len(other["data"]["campaigns"]["edges"]) == 2


def test_a_ready_plan_still_refuses_variables_over_the_limits(graphql: GraphQLClient) -> None:
    graphql.data(NESTED, {"n": 2})
    # 500 campaigns of 500 callbacks each, with their attempts: over the complexity limit.
    response = graphql.post(NESTED, {"n": 500})
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert graphql.statements == []
    assert _directly(graphql) == 0


def test_a_ready_plan_still_refuses_variables_of_the_wrong_type(graphql: GraphQLClient) -> None:
    query = "query Count($n: Int) { agents(first: $n) { totalCount } }"
    graphql.data(query, {"n": 2})
    response = graphql.post(query, {"n": "two"})
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert _directly(graphql) == 0


def test_a_ready_plan_answers_a_bad_argument_as_the_pipeline_does(
    graphql: GraphQLClient,
) -> None:
    query = "query Page($after: String) { agents(first: 2, after: $after) { edges { cursor } } }"
    graphql.data(query, {"after": None})
    response = graphql.post(query, {"after": "not a cursor"})
    assert response.status_code == 200
    (error,) = response.json()["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["path"] == ["agents"]
