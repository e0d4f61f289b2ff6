"""Each distinct valid document is validated once; refused and invalid ones never stick."""

from __future__ import annotations

from typing import Any

import pytest
from strawberry.schema.schema import validate_document

from tests.graphql_client import GraphQLClient


@pytest.fixture
def validations(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The documents validated, in order (GraphQL's own validation, counted)."""
    seen: list[str] = []

    def counting(schema: Any, document: Any, rules: Any) -> Any:
        seen.append(document.loc.source.body)
        return validate_document(schema, document, rules)

    monkeypatch.setattr("service.schema.validate_document", counting)
    return seen


def test_a_valid_document_is_validated_once(
    empty_graphql: GraphQLClient, validations: list[str]
) -> None:
    query = "{ campaigns { totalCount } }"
    for _ in range(3):
        assert empty_graphql.data(query) == {"campaigns": {"totalCount": 0}}
    assert validations == [query]


def test_invalid_and_refused_documents_are_not_remembered(
    empty_graphql: GraphQLClient, validations: list[str]
) -> None:
    invalid = "{ campaigns { noSuchField } }"
    for _ in range(2):
        body = empty_graphql.execute(invalid)
        assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert validations == [invalid, invalid]

    path = ["callbacks", "edges", "node", "job", "campaign"] * 3 + ["name"]
    too_deep = "{ " + " { ".join(path) + " }" * len(path)
    body = empty_graphql.execute(too_deep)
    assert body["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert validations == [invalid, invalid]  # refused before validation
