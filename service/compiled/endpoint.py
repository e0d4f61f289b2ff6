"""The compiled path's own way in: a POSTed query whose plan is ready skips Strawberry's
request pipeline.

Strawberry answers a request by parsing its body again, building the context, and running
every extension's parse, validation and execution hooks around the compiled path: about a
sixth of a report page's CPU time. A document that was parsed, validated and planned once
(through that pipeline, so every check it makes on a document has passed) needs none of it
again. What depends on the request is checked again here, exactly as the pipeline checks it:
the caller's right to the operation, the query limits against these variables, and the
variables' types. The response is formatted and given its status by the same view methods
the pipeline uses. Anything else, and any request whose plan is not ready, goes to Strawberry.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from strawberry import Schema
from strawberry.types import ExecutionResult

from service.auth.permissions import operation_refusal
from service.compiled.execution import CompiledQueries
from service.errors import QueryTooComplexError
from service.graph.http_guard import GRAPHQL_REQUEST
from service.graph.query_limits import check_operation
from service.graph.request_metrics import REQUEST_NOTE
from service.graph.view import PomreportGraphQL
from service.media_types import wants_stream
from service.settings import QueryLimits


class CompiledQueryEndpoint:
    """ASGI app for POST /graphql: ready plans answered here, everything else by `graphql`."""

    def __init__(
        self,
        graphql: PomreportGraphQL,
        schema: Schema,
        compiled: CompiledQueries,
        limits: QueryLimits,
    ) -> None:
        self.graphql = graphql
        self.schema = schema
        self.compiled = compiled
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            response = await self._answer(Request(scope, receive))
            if response is not None:
                await response(scope, receive, send)
                return
        await self.graphql(scope, receive, send)

    async def _answer(self, request: Request) -> Response | None:
        payload = request.scope.get(GRAPHQL_REQUEST)
        if not isinstance(payload, dict) or payload.get("extensions"):
            return None
        if wants_stream(request.headers.get("accept")):
            return None  # an event stream or multipart answer: Strawberry's
        state = request.app.state
        if not state.settings.compiled_execution:
            return None
        operation_name = payload.get("operationName")
        variables = payload.get("variables") or {}
        ready = self.compiled.ready_plan(
            self.schema._schema,
            payload["query"],
            operation_name,
            variables,
            state.engine.dialect.name,
        )
        if ready is None:
            return None  # before any context is built: Strawberry builds its own
        context = await self.graphql.get_context(request, None)
        if operation_refusal(context.principal, ready.document, operation_name) is not None:
            return None
        try:
            check_operation(ready.document, operation_name, variables, self.limits)
        except QueryTooComplexError:
            return None
        result = await self.compiled.run(ready, context)
        if result is None:
            return None
        context.replicas.count(context.read_target)
        if context.read_again_on_primary(result.errors):
            # The replica failed under it: Strawberry runs it again, and its context reads
            # the primary (or a replica still up).
            return None
        if result.errors:
            self.schema.process_errors(result.errors)
        note = REQUEST_NOTE.get()
        if note is not None:
            name = ready.operation.name.value if ready.operation.name else None
            note.answered("query", name, result.errors)
        response_data = await self.graphql.process_result(
            request, ExecutionResult(data=result.data, errors=result.errors)
        )
        return self.graphql.create_response(
            response_data, await self.graphql.get_sub_response(request)
        )
