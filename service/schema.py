"""The GraphQL schema served at /graphql, built from the graph's types and the report's."""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any, cast

import orjson
import strawberry
from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    OperationType,
    parse,
    print_ast,
)
from graphql.execution import Executor
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import AddValidationRules, MaxTokensLimiter, SchemaExtension
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext, validate_document
from strawberry.types import ExecutionContext

from service.auth.permissions import OperationAuthorization
from service.compiled.execution import CompiledQueries, compiled_execution_extension
from service.errors import (
    SUBSCRIPTION_TRANSPORTS,
    BadRequestError,
    ErrorCodes,
    mask_unexpected_errors,
)
from service.graph.context import Context, FreshLoadersPerOperation, PrimaryForWrites
from service.graph.mutation import Mutation
from service.graph.nodes import NODE_TYPES
from service.graph.query import EntityQuery
from service.graph.query_limits import query_limits_extension
from service.graph.request_metrics import RequestMetricsExtension
from service.graph.subscription import CallbackStatusChange, Subscription
from service.reports.callbacks_scheduled_details.query import ReportQuery
from service.reports.callbacks_scheduled_summary.query import SummaryQuery
from service.settings import QueryLimits


class SubscriptionEventExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Executes each subscription event once for all subscribers that would get the same
    answer, and gives each event its own subfield memo.

    This is the general path's sharing, for subscribers that run Strawberry's stream (legacy
    graphql-ws, or the compiled path switched off); graphql-transport-ws subscribers share
    through their delivery groups instead (`service.graph.fanout`). Subscribers of one change
    share its event object (`CallbackStatusChange`). Those with the same operation, variables
    and row scope get the same response, so the first of them executes it and the others take
    its result: one execution per change and kind of subscriber, not one per subscriber. A
    result with errors is not shared (each subscriber's errors are masked and logged as its
    own); the others execute for themselves.

    graphql-core 3.3 copies the subscription's executor for every event, sharing its
    `collect_subfields` memo. The memo is keyed by the identity of per-event field lists
    and keeps them alive, so across events it never hits and only grows: about 2.4 KiB per
    subscription per change until the subscription ends (see bench/README.md). Within one
    event it still does its job.
    """

    # What a subscription's response depends on besides the event and the caller's row scope:
    # its operation, fragments and variables; computed once per subscription.
    _operation_key: tuple[str, bytes] | None = None

    def build_per_event_executor(self, payload: Any) -> Executor[Any]:
        if self._operation_key is None:
            printed = [print_ast(self.operation)]
            printed.extend(sorted(print_ast(f.definition) for f in self.fragments.values()))
            variables = orjson.dumps(
                self.variable_values.coerced, default=repr, option=orjson.OPT_SORT_KEYS
            )
            self._operation_key = ("\n".join(printed), variables)
        executor = super().build_per_event_executor(payload)
        executor._relevant_sub_fields = {}
        return executor

    def execute_operation(self, serially: bool | None = None) -> Any:
        event = self.root_value
        context = self.context_value
        if (
            self.operation.operation is OperationType.SUBSCRIPTION
            and self._operation_key is None  # not a stream's event
            and not isinstance(event, CallbackStatusChange)  # nor a delivery group's
        ):
            # A subscription sent as a plain request: no stream to deliver its events on.
            raise BadRequestError(
                f"a subscription needs a stream to deliver its events: {SUBSCRIPTION_TRANSPORTS}"
            )
        if (
            self._operation_key is None  # not a stream's event: a delivery group's execution
            or not isinstance(event, CallbackStatusChange)
            or not isinstance(context, Context)
        ):
            return super().execute_operation(serially)
        key = (self._operation_key, context.caller.row_scope)
        shared = event.shared_results.get(key)
        if shared is None:
            result = super().execute_operation(serially)
            if not self.is_awaitable(result):
                event.shared_results[key] = result  # complete already: others take it as is
                return result
            running = asyncio.ensure_future(result)
            event.shared_results[key] = running
            return self._first_result(running)
        if isinstance(shared, asyncio.Future):
            if not shared.done():
                return self._shared_result(shared, serially)
            shared = shared.result()
        # A result with errors is the first subscriber's own: the others execute for themselves.
        return super().execute_operation(serially) if shared.errors else shared

    @staticmethod
    async def _first_result(running: asyncio.Future[ExecutionResult]) -> ExecutionResult:
        # Shielded: the subscriber that started it may leave while others wait for it.
        return await asyncio.shield(running)

    async def _shared_result(
        self, running: asyncio.Future[ExecutionResult], serially: bool | None
    ) -> ExecutionResult:
        result = await asyncio.shield(running)
        if not result.errors:
            return result
        own = super().execute_operation(serially)
        # A subscription event's result is always a plain ExecutionResult (no @defer).
        return cast(ExecutionResult, await own if self.is_awaitable(own) else own)


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
class Query(ReportQuery, SummaryQuery, EntityQuery):
    """The report's root fields and its summary, then the objects behind it."""


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
            RequestMetricsExtension,
            parsed_documents_extension(),
            FreshLoadersPerOperation,
            OperationAuthorization,
            query_limits_extension(limits),
            *no_introspection,
            # After every check that may refuse the document.
            remembered_validation_extension(),
            # Before the compiled path: it reads where the context says.
            PrimaryForWrites,
            compiled_execution_extension(compiled_queries),
        ],
    )
    schema.compiled_queries = compiled_queries
    return schema
