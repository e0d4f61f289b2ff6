"""The Strawberry ASGI app behind /graphql: its context, WebSocket authentication, the
statuses of refused requests, and GraphiQL opening on the report."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, cast

import orjson
from cross_web import AsyncHTTPRequestAdapter
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import ASGIWebSocketAdapter, GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.schema.schema import StreamResult
from strawberry.subscriptions import (
    GRAPHQL_SSE_PROTOCOL,
    GRAPHQL_TRANSPORT_WS_PROTOCOL,
    GRAPHQL_WS_PROTOCOL,
    MULTIPART_SUBSCRIPTION_PROTOCOL,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    SubscribeMessage,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import StartMessage
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET, UnsetType

from service.auth.callers import Caller
from service.auth.http import authenticated_principal, is_proxied
from service.auth.rate_limits import RateLimiter
from service.errors import RETRY_AFTER_SECONDS, RateLimitedError, UnauthenticatedError
from service.graph.context import Context
from service.graph.fanout import SUBSCRIPTION_SOCKET, SubscriptionSocket, deliver_handed_over
from service.graph.trusted_documents import refused_operation
from service.media_types import GRAPHQL_RESPONSE_JSON, JSON, response_media_type
from service.web.pages import graphiql_response

EXAMPLE_REPORT_QUERY = """# The Callbacks Scheduled Details report: the last 7 days, first page.
# Try timePeriod: {preset: TODAY, timeZone: "Europe/Berlin"} or filters: {agentId: "A1001"}.
query CallbacksScheduledDetails {
  callbacksScheduledDetails(timePeriod: {lastDays: 7}) {
    timePeriod { from to timeZone label }
    queryTime
    filters { name value }
    totalRecords
    rows(first: 20) {
      edges {
        node {
          campaignDisplayName
          jobId
          creatorAgentId
          callbackId
          callbackType
          createdFor
          contactId
          creationTime
          scheduledStartTime
          scheduledEndTime
          callbackStatus
          servicedByAgentId
          interactionAttemptTime
          customCompletionCode
          systemCompletionCode
        }
      }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""


# connection_ack without a payload.
NO_ACK_PAYLOAD = cast(UnsetType, UNSET)


async def over_rate_limit(context: Context, websocket: object) -> RateLimitedError | None:
    """Take a token for an operation a WebSocket starts; the refusal when its key has none.

    Each operation a client starts counts as a request of its key, as an HTTP request does;
    the changes a subscription then receives do not. A refused operation gets an error and
    the connection stays open, its other operations running.
    """
    principal = context.principal
    if principal is None:
        return None  # refused as unauthenticated when it runs
    limiter: RateLimiter = cast(ASGIWebSocketAdapter, websocket).ws.app.state.rate_limits
    try:
        await limiter.check(principal)
    except RateLimitedError as error:
        return error
    return None


def untrusted_operation(websocket: object, payload: Any) -> GraphQLError | None:
    """In allow-list mode, the refusal of an operation whose document the manifest lacks
    (checked before it is parsed); None otherwise."""
    trusted = cast(ASGIWebSocketAdapter, websocket).ws.app.state.trusted_documents
    return None if trusted is None else refused_operation(trusted, payload)


class GraphQLTransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """`graphql-transport-ws`, refusing in allow-list mode an operation whose document the
    manifest lacks, counting each operation against its key's rate limit and
    telling each operation's subscription which socket it writes to, so subscribers with the
    same responses share them (`service.graph.fanout`)."""

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        await super().handle_connection_init(message)
        # Initialised: the cancelled timeout would otherwise stay referenced, with its
        # exception, traceback and frames, for as long as the connection lasts.
        self.connection_init_timeout_task = None

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        if self.connection_acknowledged and message["id"] not in self.operations:
            untrusted = untrusted_operation(self.websocket, message["payload"])
            if untrusted is not None:
                await self.send_message(
                    {"id": message["id"], "type": "error", "payload": [untrusted.formatted]}
                )
                return
            refusal = await over_rate_limit(self.context, self.websocket)
            if refusal is not None:
                await self.send_message(
                    {"id": message["id"], "type": "error", "payload": [refusal.formatted]}
                )
                return
        await super().handle_subscribe(message)

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        # Each operation runs in a task of its own: the variable is that task's.
        operation_id = orjson.dumps(operation.id).decode()
        SUBSCRIPTION_SOCKET.set(
            SubscriptionSocket(
                operation.id,
                operation.query,
                operation.variables,
                operation.operation_name,
                f'{{"id":{operation_id},"type":"next","payload":',
                cast(ASGIWebSocketAdapter, self.websocket).ws.send_text,
            )
        )
        await super().run_operation(operation)

    async def _send_result_stream(
        self, operation: Operation[Context, None], result_source: StreamResult
    ) -> None:
        await super()._send_result_stream(operation, result_source)
        # A subscription handed over to its group ends its stream at once and is delivered
        # from there until it ends; then `complete` follows as for any stream.
        socket = SUBSCRIPTION_SOCKET.get()
        if socket is not None:
            ending = await deliver_handed_over(socket)
            if ending is not None and ending.errors:
                self.schema.process_errors(ending.errors)  # masked as on the stream
                await operation.send_next(ending)


class LegacyGraphQLWSHandler(BaseGraphQLWSHandler[Context, None]):
    """Legacy `graphql-ws`, closing a connection that sends no `connection_init` in time,
    refusing in allow-list mode an operation whose document the manifest lacks, and counting
    each operation it starts against its key's rate limit.

    Strawberry times `graphql-transport-ws` connections out (4408) but not legacy ones, so an
    unauthenticated client could hold a socket open for as long as it liked. (Its subscribers
    execute each event for themselves: the shared deliveries are graphql-transport-ws's.)
    """

    async def handle_start(self, message: StartMessage) -> None:
        if self.connection_acknowledged:
            untrusted = untrusted_operation(self.websocket, message["payload"])
            if untrusted is not None:
                await self.send_message(
                    {"type": "error", "id": message["id"], "payload": untrusted.formatted}
                )
                return
            refusal = await over_rate_limit(self.context, self.websocket)
            if refusal is not None:
                await self.send_message(
                    {"type": "error", "id": message["id"], "payload": refusal.formatted}
                )
                return
        await super().handle_start(message)

    async def handle(self) -> None:
        timeout = asyncio.create_task(self._close_unless_initialised())
        try:
            await super().handle()
        finally:
            timeout.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timeout

    async def _close_unless_initialised(self) -> None:
        view = cast(PomreportGraphQL, self.view)
        await asyncio.sleep(view.connection_init_wait_timeout.total_seconds())
        if not self.connection_acknowledged:
            await self.websocket.close(code=4408, reason="Connection initialisation timeout")


# Subscriptions over WebSockets, and over HTTP (Server-Sent Events, or multipart) for clients
# that cannot open one.
SUBSCRIPTION_PROTOCOLS = (
    GRAPHQL_TRANSPORT_WS_PROTOCOL,
    GRAPHQL_WS_PROTOCOL,
    GRAPHQL_SSE_PROTOCOL,
    MULTIPART_SUBSCRIPTION_PROTOCOL,
)


class PomreportGraphQL(GraphQL[Context, None]):
    """Strawberry's ASGI app with the service's per-request context."""

    graphql_transport_ws_handler_class = GraphQLTransportWSHandler
    graphql_ws_handler_class = LegacyGraphQLWSHandler

    async def render_graphql_ide(self, request: Request) -> Response:
        """GraphiQL from the service's own files, opening on an example report query."""
        return graphiql_response(EXAMPLE_REPORT_QUERY)

    def encode_json(self, data: object) -> str:
        """JSON by orjson, several times faster than the standard library's on big pages; text,
        since WebSocket messages must be text frames."""
        return orjson.dumps(data).decode()

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        state = request.app.state
        return Context(
            settings=state.settings,
            replicas=state.replicas,
            transactions=state.transactions,
            events=state.events,
            caller=Caller(
                state.api_keys,
                authenticated_principal(request.scope),
                credentials=request.headers.get("authorization"),
                proxied=is_proxied(request.scope),
            ),
            is_websocket=isinstance(request, WebSocket),
            client_address=request.client.host if request.client else None,
            wrote_recently=state.replicas.client_wrote(request),
        )

    async def execute_single(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: Context,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        """Run an operation; one that read a replica which failed under it runs once more, on
        the primary (a replica just stopped answers no request with an error). The response
        to a mutation carries the read-your-writes cookie when there are replicas."""
        result = await super().execute_single(
            request, request_adapter, sub_response, context, root_value, request_data
        )
        if context.read_again_on_primary(result.errors):
            result = await super().execute_single(
                request, request_adapter, sub_response, context, root_value, request_data
            )
        cookie = context.replicas.wrote_cookie() if context.wrote else None
        if cookie is not None:
            sub_response.set_cookie(**cookie)
        return result

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """Authenticate a WebSocket from its connection_init payload (or upgrade header)."""
        params = context.connection_params or {}
        authorization = params.get("Authorization", params.get("authorization"))
        if authorization is None and context.principal is not None:
            return NO_ACK_PAYLOAD  # authenticated by the upgrade request's header
        try:
            if authorization is not None and not isinstance(authorization, str):
                raise UnauthenticatedError("Authorization in connection_init must be a string")
            await context.authenticate(authorization)
        except UnauthenticatedError as error:
            raise ConnectionRejectionError(
                {"message": error.message, "extensions": {"code": "UNAUTHENTICATED"}}
            ) from None
        return NO_ACK_PAYLOAD

    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        sub_response = await super().get_sub_response(request)
        # The media type the answer goes out as, negotiated once from the request's Accept.
        sub_response.media_type = response_media_type(request.headers.get("accept"))
        return sub_response

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        """The answer in the media type the client accepts, with GraphQL over HTTP's statuses.

        Refusals for who is asking are 401 or 403, and SERVICE_UNAVAILABLE (database down, no
        connection free in time) is 503 with Retry-After, so that clients and proxies back off
        and retry. Other request errors (parse, validation, variables of the wrong type, limits)
        are 400 under application/graphql-response+json, and 200 under application/json, which
        legacy clients read whatever the status. Errors raised while executing, which carry a
        path, are 200. A request that ran nothing has no `data` entry at all, as the GraphQL
        spec says of errors raised before execution begins."""
        media_type = sub_response.media_type or JSON
        if isinstance(response_data, dict) and _ran_nothing(response_data):
            response_data = cast(GraphQLHTTPResponse, {"errors": response_data["errors"]})
        response = super().create_response(response_data, sub_response)
        response.headers["content-type"] = media_type
        if not isinstance(response_data, dict):
            return response
        errors = cast(list[dict[str, Any]], response_data.get("errors") or [])
        codes = {(error.get("extensions") or {}).get("code") for error in errors}
        if "SERVICE_UNAVAILABLE" in codes:
            response.status_code = 503
            response.headers["retry-after"] = str(RETRY_AFTER_SECONDS)
            return response
        if response_data.get("data") is not None:
            return response
        if codes == {"UNAUTHENTICATED"}:
            response.status_code = 401
            response.headers["www-authenticate"] = 'Bearer realm="pomreport"'
        elif codes == {"FORBIDDEN"}:
            response.status_code = 403
        elif (
            errors
            and media_type == GRAPHQL_RESPONSE_JSON
            and not any("path" in error for error in errors)
        ):
            response.status_code = 400
        return response


def _ran_nothing(response_data: GraphQLHTTPResponse) -> bool:
    """Whether a response reports errors raised before execution (none carries a path)."""
    errors = cast(list[dict[str, Any]], response_data.get("errors") or [])
    return (
        response_data.get("data") is None
        and bool(errors)
        and not any("path" in error for error in errors)
    )
