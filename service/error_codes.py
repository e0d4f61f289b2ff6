"""Give every error a client can cause an `extensions.code` (SPEC 4), even GraphQL's own."""

from __future__ import annotations

from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension


def _with_code(errors: list[GraphQLError] | None, code: str) -> None:
    for error in errors or []:
        if not (error.extensions or {}).get("code"):
            error.extensions = {**(error.extensions or {}), "code": code}


class ErrorCodes(SchemaExtension):
    """Marks parse failures, validation failures and variables of the wrong type."""

    def on_parse(self) -> Iterator[None]:
        yield
        _with_code(self.execution_context.pre_execution_errors, "GRAPHQL_PARSE_FAILED")

    def on_validate(self) -> Iterator[None]:
        yield
        _with_code(self.execution_context.pre_execution_errors, "GRAPHQL_VALIDATION_FAILED")

    def on_execute(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is not None and result.errors:
            # Variable coercion fails before any resolver runs: no path, nothing executed.
            _with_code([e for e in result.errors if e.path is None], "BAD_USER_INPUT")
