"""The GraphQL schema served at /graphql."""

from __future__ import annotations

from collections.abc import Callable

import strawberry
from graphql import GraphQLError
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import AddValidationRules, MaxTokensLimiter, SchemaExtension
from strawberry.types import ExecutionContext

from service.auth.permissions import OperationAuthorization
from service.context import FreshLoadersPerOperation
from service.error_codes import ErrorCodes, mask_unexpected_errors
from service.graph.mutation import Mutation
from service.graph.nodes import (
    AgentNode,
    CallbackAttemptNode,
    CallbackNode,
    CampaignNode,
    ContactNode,
    JobNode,
)
from service.graph.query import Query
from service.graph.subscription import Subscription
from service.query_limits import QueryLimits, query_limits_extension


class PomreportSchema(strawberry.Schema):
    """The schema, masking unexpected errors before they reach a client."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        mask_unexpected_errors(errors)


def create_schema(
    limits: QueryLimits | None = None, *, introspection: bool = True
) -> strawberry.Schema:
    """Build the schema; one per application, refusing operations over `limits`."""
    limits = limits or QueryLimits()
    no_introspection: list[Callable[[], SchemaExtension]] = (
        [] if introspection else [lambda: AddValidationRules([NoSchemaIntrospectionCustomRule])]
    )
    return PomreportSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=[CampaignNode, JobNode, AgentNode, ContactNode, CallbackNode, CallbackAttemptNode],
        extensions=[
            lambda: MaxTokensLimiter(max_token_count=limits.max_tokens),
            ErrorCodes,
            FreshLoadersPerOperation,
            OperationAuthorization,
            query_limits_extension(limits),
            *no_introspection,
        ],
    )
