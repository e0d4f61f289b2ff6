"""The GraphQL schema served at /graphql, built from the graph's types and the report's."""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import strawberry
from graphql import DocumentNode, GraphQLError, parse
from graphql.execution import Executor
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import AddValidationRules, MaxTokensLimiter, SchemaExtension
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext, validate_document
from strawberry.types import ExecutionContext

from service.auth.permissions import OperationAuthorization
from service.compiled.execution import CompiledQueries, compiled_execution_extension
from service.errors import ErrorCodes, mask_unexpected_errors
from service.graph.context import FreshLoadersPerOperation
from service.graph.mutation import Mutation
from service.graph.nodes import NODE_TYPES
from service.graph.query import EntityQuery
from service.graph.query_limits import query_limits_extension
from service.graph.subscription import Subscription
from service.reports.callbacks_scheduled_details.query import ReportQuery
from service.settings import QueryLimits


class SubscriptionEventExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Gives each subscription event its own subfield memo.

    graphql-core 3.3 copies the subscription's executor for every event, sharing its
    `collect_subfields` memo. The memo is keyed by the identity of per-event field lists
    and keeps them alive, so across events it never hits and only grows: about 2.4 KiB per
    subscription per change until the subscription ends (see bench/README.md). Within one
    event it still does its job. (Subscribers over WebSockets share their events' executions
    in `service.graph.fanout` and do not come this way.)
    """

    def build_per_event_executor(self, payload: Any) -> Executor[Any]:
        executor = super().build_per_event_executor(payload)
        executor._relevant_sub_fields = {}
        return executor


def parsed_documents_extension(max_documents: int = 512) -> type[SchemaExtension]:
    """An extension that parses each distinct document text once and shares the tree.

    Subscribers of one subscription otherwise hold a parse tree each (tokens and nodes, about
    10 KiB for a small document) for as long as they listen; requests skip the parse. Only
    documents that parse are remembered (Strawberry's own parse then reports the error), at
    most `max_documents`, least recently used out first. Nothing mutates a parsed document.
    """
    parsed: OrderedDict[tuple[str, Any], DocumentNode] = OrderedDict()

    class ParsedDocuments(SchemaExtension):
        def on_parse(self) -> Iterator[None]:
            context = self.execution_context
            if context.query is not None and context.graphql_document is None:
                key = (context.query, context.parse_options.get("max_tokens"))
                document = parsed.get(key)
                if document is not None:
                    parsed.move_to_end(key)
                    context.graphql_document = document
                else:
                    with contextlib.suppress(GraphQLError):
                        document = parse(context.query, **context.parse_options)
                        context.graphql_document = parsed[key] = document
                        if len(parsed) > max_documents:
                            parsed.popitem(last=False)
            yield

    return ParsedDocuments


def remembered_validation_extension(max_documents: int = 512) -> type[SchemaExtension]:
    """An extension that validates each distinct valid document once.

    Validation costs about 4 ms for the report's query, and clients send the same few
    documents over and over. It runs last, after the authorization and limit checks, so a
    refused document is never validated and a hostile one never enters the memory; only
    documents that passed are remembered (no error objects are shared between requests), at
    most `max_documents` of them, least recently used out first.
    """
    valid: OrderedDict[tuple[str, tuple[Any, ...]], None] = OrderedDict()

    class RememberedValidation(SchemaExtension):
        def on_validate(self) -> Iterator[None]:
            context = self.execution_context
            if context.pre_execution_errors is None and context.query is not None:
                key = (context.query, tuple(context.validation_rules))
                if key in valid:
                    valid.move_to_end(key)
                    context.pre_execution_errors = []  # Strawberry skips its validation
                else:
                    assert context.graphql_document is not None
                    errors = validate_document(
                        context.schema._schema, context.graphql_document, context.validation_rules
                    )
                    context.pre_execution_errors = errors
                    if not errors:
                        valid[key] = None
                        if len(valid) > max_documents:
                            valid.popitem(last=False)
            yield

    return RememberedValidation


@strawberry.type(description="Read access to the callback report and the objects behind it.")
class Query(ReportQuery, EntityQuery):
    """The report's root fields, then the objects behind it."""


class PomreportSchema(strawberry.Schema):
    """The schema, masking unexpected errors before they reach a client."""

    # The compiled path's plans and counts (set by create_schema).
    compiled_queries: CompiledQueries

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        mask_unexpected_errors(errors)


def create_schema(
    limits: QueryLimits | None = None, *, introspection: bool = True
) -> PomreportSchema:
    """Build the schema; one per application, refusing operations over `limits`."""
    limits = limits or QueryLimits()
    no_introspection: list[Callable[[], SchemaExtension]] = (
        [] if introspection else [lambda: AddValidationRules([NoSchemaIntrospectionCustomRule])]
    )
    compiled_queries = CompiledQueries()
    schema = PomreportSchema(
        execution_context_class=SubscriptionEventExecutionContext,
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=NODE_TYPES,
        extensions=[
            lambda: MaxTokensLimiter(max_token_count=limits.max_tokens),
            ErrorCodes,
            parsed_documents_extension(),
            FreshLoadersPerOperation,
            OperationAuthorization,
            query_limits_extension(limits),
            *no_introspection,
            # After every check that may refuse the document.
            remembered_validation_extension(),
            compiled_execution_extension(compiled_queries),
        ],
    )
    schema.compiled_queries = compiled_queries
    return schema
