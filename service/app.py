"""The Starlette application: /graphql, /healthz and /readyz around one database engine."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator
from typing import Any, cast

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.types.unset import UNSET, UnsetType

from service.auth.api_keys import ApiKeyRegistry
from service.auth.http import ApiKeyAuthentication, authenticated_principal, is_proxied
from service.callbacks.expiry_sweeper import sweep_forever
from service.context import Context
from service.db import create_engine, create_session_maker, create_write_engine
from service.errors import UnauthenticatedError
from service.events.callback_events import create_callback_events
from service.http_guard import GraphQLHTTPGuard
from service.schema import create_schema
from service.settings import Settings

logger = logging.getLogger(__name__)

READINESS_TIMEOUT_SECONDS = 2.0


async def database_is_reachable(engine: AsyncEngine, *, within_seconds: float) -> bool:
    """Run a trivial statement; False when the database does not answer in time."""
    try:
        async with asyncio.timeout(within_seconds), engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except (TimeoutError, OSError, SQLAlchemyError) as error:
        logger.warning("database not reachable: %s", error)
        return False
    return True


async def healthz(_request: Request) -> JSONResponse:
    """Liveness: the process answers."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """Readiness: the database answers."""
    if await database_is_reachable(
        request.app.state.engine, within_seconds=READINESS_TIMEOUT_SECONDS
    ):
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "not ready", "reason": "database unreachable"}, status_code=503)


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


class LegacyGraphQLWSHandler(BaseGraphQLWSHandler[Context, None]):
    """Legacy `graphql-ws`, closing a connection that sends no `connection_init` in time.

    Strawberry times `graphql-transport-ws` connections out (4408) but not legacy ones, so an
    unauthenticated client could hold a socket open for as long as it liked.
    """

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


class PomreportGraphQL(GraphQL[Context, None]):
    """Strawberry's ASGI app with the service's per-request context."""

    graphql_ws_handler_class = LegacyGraphQLWSHandler

    @property
    def graphql_ide_html(self) -> str:
        """GraphiQL, opening on an example report query instead of Strawberry's comment."""
        html = super().graphql_ide_html
        start = html.find("const EXAMPLE_QUERY = `")
        end = html.find("`;", start)
        if start < 0 or end < 0:
            return html
        example = EXAMPLE_REPORT_QUERY.replace("\\", "\\\\").replace("`", "\\`")
        return f"{html[:start]}const EXAMPLE_QUERY = `{example}{html[end:]}"

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        state = request.app.state
        return Context(
            settings=state.settings,
            database_session_maker=state.session_maker,
            write_session_maker=state.write_session_maker,
            events=state.events,
            api_keys=state.api_keys,
            principal=authenticated_principal(request.scope),
            credentials=request.headers.get("authorization"),
            proxied=is_proxied(request.scope),
            is_websocket=isinstance(request, WebSocket),
        )

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

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        """Statuses for requests that ran nothing (GraphQL over HTTP): 401 or 403 when refused
        for who is asking, 400 for any other request error (parse, validation, variables of
        the wrong type, limits). Errors raised while executing, which carry a path, stay 200."""
        response = super().create_response(response_data, sub_response)
        if not isinstance(response_data, dict) or response_data.get("data") is not None:
            return response
        errors = cast(list[dict[str, Any]], response_data.get("errors") or [])
        codes = {(error.get("extensions") or {}).get("code") for error in errors}
        if codes == {"UNAUTHENTICATED"}:
            response.status_code = 401
            response.headers["www-authenticate"] = 'Bearer realm="pomreport"'
        elif codes == {"FORBIDDEN"}:
            response.status_code = 403
        elif errors and not any("path" in error for error in errors):
            response.status_code = 400
        return response


def create_app(settings: Settings) -> Starlette:
    """Build the application; the lifespan owns the engine."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine = create_engine(
            settings.database_url, statement_timeout_ms=settings.statement_timeout_ms
        )
        write_engine = create_write_engine(settings.database_url, engine)
        app.state.engine = engine
        app.state.session_maker = create_session_maker(engine)
        app.state.write_session_maker = create_session_maker(write_engine)
        events = create_callback_events(settings, app.state.session_maker)
        app.state.events = events
        app.state.api_keys = ApiKeyRegistry(
            app.state.session_maker,
            open_without_keys=settings.open_without_keys or settings.allow_unauthenticated,
            open_to_proxied=settings.allow_unauthenticated,
            cache_seconds=settings.api_key_cache_seconds,
        )
        sweeper: asyncio.Task[None] | None = None
        try:
            await events.start()
            await app.state.api_keys.start()
            if settings.expiry_sweep_seconds > 0:
                sweeper = asyncio.create_task(
                    sweep_forever(
                        events, app.state.write_session_maker, settings.expiry_sweep_seconds
                    ),
                    name="expiry-sweeper",
                )
            yield
        finally:
            if sweeper is not None:
                sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeper
            await events.stop()
            if write_engine is not engine:
                await write_engine.dispose()
            await engine.dispose()

    graphql = PomreportGraphQL(
        create_schema(settings.query_limits, introspection=settings.introspection),
        graphql_ide="graphiql" if settings.introspection else None,
        connection_init_wait_timeout=dt.timedelta(seconds=settings.websocket_init_timeout_seconds),
    )
    app = Starlette(
        routes=[
            Route(
                "/graphql",
                ApiKeyAuthentication(
                    GraphQLHTTPGuard(graphql, max_body_bytes=settings.max_body_bytes)
                ),
                methods=["GET", "POST"],
            ),
            WebSocketRoute("/graphql", ApiKeyAuthentication(graphql)),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.settings = settings
    return app
