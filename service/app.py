"""The Starlette application: /graphql, /healthz, /readyz, /metrics and the report's CSV
download around one database engine, with CORS for the allowed origins and rate limits per API
key."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hmac
import logging
from collections.abc import AsyncIterator

from sqlalchemy import event, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp

from service import metrics
from service.auth.api_keys import ApiKeyRegistry
from service.auth.http import ApiKeyAuthentication
from service.auth.key_usage import KeyUsage
from service.auth.rate_limits import create_rate_limiter
from service.callbacks.expiry_sweeper import sweep_forever
from service.callbacks.transactions import Transactions
from service.compiled.endpoint import CompiledQueryEndpoint
from service.cors import CrossOriginApi
from service.db.engines import create_engine, create_session_maker, create_write_engine
from service.db.replicas import Replicas, create_replicas
from service.events.relay import ChangeLogRelay
from service.events.transports import create_callback_events
from service.graph.http_guard import GraphQLHTTPGuard
from service.graph.persisted_queries import PersistedQueries
from service.graph.request_metrics import RequestMetrics
from service.graph.trusted_documents import ManifestError, TrustedDocuments, load_trusted_documents
from service.graph.view import SUBSCRIPTION_PROTOCOLS, PomreportGraphQL
from service.reports.callbacks_scheduled_details.csv_export import download_csv
from service.reports.callbacks_scheduled_details.csv_links import CSV_PATH
from service.request_ids import RequestIds
from service.schema import PomreportSchema, create_schema
from service.settings import Settings, SettingsError
from service.web.pages import page_routes

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


async def metrics_endpoint(request: Request) -> Response:
    """Prometheus text format; with POMREPORT_METRICS_KEY set, only for that Bearer key."""
    key: str | None = request.app.state.settings.metrics_key
    if key is not None:
        sent = request.headers.get("authorization", "")
        if not hmac.compare_digest(sent.encode(), f"Bearer {key}".encode()):
            return PlainTextResponse(
                "/metrics needs 'Authorization: Bearer <POMREPORT_METRICS_KEY>'\n",
                status_code=401,
                headers={"www-authenticate": 'Bearer realm="pomreport metrics"'},
            )
    metrics.record_pool_use(request.app.state.engine.sync_engine.pool)
    return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE)


def count_statements(engine: AsyncEngine) -> None:
    """Feed an engine's statements to the metrics."""

    def statement(*_arguments: object) -> None:
        metrics.count_statement()

    event.listen(engine.sync_engine, "before_cursor_execute", statement)


async def healthz(_request: Request) -> JSONResponse:
    """Liveness: the process answers."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """Readiness: the database answers. With read replicas, the body lists each (up, lag)
    too; a replica down leaves the service ready, since the primary takes its reads."""
    replicas: Replicas = request.app.state.replicas
    shown = {"replicas": replicas.status()} if replicas.replicas else {}
    if await database_is_reachable(
        request.app.state.engine, within_seconds=READINESS_TIMEOUT_SECONDS
    ):
        return JSONResponse({"status": "ready", **shown})
    return JSONResponse(
        {"status": "not ready", "reason": "database unreachable", **shown}, status_code=503
    )


def load_allow_list(settings: Settings, schema: PomreportSchema) -> TrustedDocuments | None:
    """The trusted documents POMREPORT_TRUSTED_DOCUMENTS names, checked against the schema; None
    when it is unset (any valid document runs)."""
    if settings.trusted_documents is None:
        return None
    try:
        return load_trusted_documents(settings.trusted_documents, schema._schema)
    except ManifestError as error:
        raise SettingsError(f"POMREPORT_TRUSTED_DOCUMENTS: {error}") from None


class PomreportApp(Starlette):
    """Starlette with request IDs outside everything, so that even the 500 of an unhandled
    error (answered by Starlette's outermost middleware) carries its X-Request-ID."""

    def build_middleware_stack(self) -> ASGIApp:
        return RequestIds(super().build_middleware_stack())


def create_app(settings: Settings) -> Starlette:
    """Build the application; the lifespan owns the engine."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine = create_engine(
            settings.database_url,
            statement_timeout_ms=settings.statement_timeout_ms,
            sqlite_busy_timeout_ms=settings.sqlite_busy_timeout_ms,
            pool_size=settings.pool_size,
            pool_timeout_seconds=settings.pool_timeout_seconds,
        )
        write_engine = create_write_engine(
            settings.database_url,
            engine,
            statement_timeout_ms=settings.statement_timeout_ms,
            sqlite_busy_timeout_ms=settings.sqlite_busy_timeout_ms,
        )
        count_statements(engine)
        if write_engine is not engine:
            count_statements(write_engine)
        app.state.engine = engine
        # The primary's: API keys, persisted queries, the events' loads and every mutation
        # read here; queries and the CSV export read where `replicas` sends them.
        app.state.session_maker = create_session_maker(engine)
        replicas = app.state.replicas = create_replicas(settings, engine, app.state.session_maker)
        for replica in replicas.replicas:
            count_statements(replica.engine)
        events = create_callback_events(settings, app.state.session_maker)
        app.state.events = events
        write_session_maker = create_session_maker(write_engine)
        relay = ChangeLogRelay(
            write_session_maker,
            events.transport,
            retention=dt.timedelta(days=settings.change_log_retention_days),
            read_session_maker=app.state.session_maker,
        )
        app.state.transactions = Transactions(write_session_maker, events, relay)
        key_usage = app.state.key_usage = KeyUsage(write_session_maker)
        app.state.api_keys = ApiKeyRegistry(
            app.state.session_maker,
            open_without_keys=settings.open_without_keys or settings.allow_unauthenticated,
            open_to_proxied=settings.allow_unauthenticated,
            cache_seconds=settings.api_key_cache_seconds,
            on_use=key_usage.note,
        )
        app.state.rate_limits = create_rate_limiter(settings)
        app.state.persisted_queries = PersistedQueries(app.state.session_maker, write_session_maker)
        if app.state.trusted_documents is not None:
            logger.info(
                "allow-list mode: only the %d trusted documents of %s run",
                len(app.state.trusted_documents),
                settings.trusted_documents,
            )
        background: list[asyncio.Task[None]] = []
        try:
            await replicas.start()
            await events.start()
            await app.state.api_keys.start()
            await key_usage.start()
            background.append(
                asyncio.create_task(
                    relay.run_forever(settings.relay_seconds), name="change-log-relay"
                )
            )
            if settings.expiry_sweep_seconds > 0:
                background.append(
                    asyncio.create_task(
                        sweep_forever(app.state.transactions, settings.expiry_sweep_seconds),
                        name="expiry-sweeper",
                    )
                )
            yield
        finally:
            for task in background:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            with contextlib.suppress(Exception):  # else the next relay round elsewhere does
                await relay.mark_noted()
            await events.stop()
            await key_usage.stop()  # writes the last uses still noted
            await app.state.rate_limits.close()
            await replicas.stop()
            if write_engine is not engine:
                await write_engine.dispose()
            await engine.dispose()

    schema = create_schema(settings.query_limits, introspection=settings.introspection)
    # Read once, before anything is served: a manifest that cannot be used stops the start.
    trusted_documents = load_allow_list(settings, schema)
    graphql = PomreportGraphQL(
        schema,
        graphql_ide="graphiql" if settings.introspection else None,
        connection_init_wait_timeout=dt.timedelta(seconds=settings.websocket_init_timeout_seconds),
        subscription_protocols=SUBSCRIPTION_PROTOCOLS,
        # Browsers apply no CORS to WebSockets: Strawberry refuses a handshake from a page on
        # another origin unless it is one of these (its own pages are the same origin).
        allowed_origins=settings.cors_origins,
    )
    app = PomreportApp(
        routes=[
            Route(
                "/graphql",
                RequestMetrics(
                    ApiKeyAuthentication(
                        GraphQLHTTPGuard(
                            CompiledQueryEndpoint(
                                graphql, schema, schema.compiled_queries, settings.query_limits
                            ),
                            max_body_bytes=settings.max_body_bytes,
                            max_tokens=settings.query_limits.max_tokens,
                        )
                    )
                ),
                methods=["GET", "POST"],
            ),
            WebSocketRoute("/graphql", RequestMetrics(ApiKeyAuthentication(graphql))),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
            Route(CSV_PATH, download_csv, methods=["GET"]),
            *page_routes(),
        ],
        # Outside the routes: a preflight is answered before the route's methods (GET, POST)
        # or the API key it does not carry are checked.
        middleware=[
            Middleware(CrossOriginApi, origins=settings.cors_origins, paths=("/graphql", CSV_PATH))
        ]
        if settings.cors_origins
        else [],
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.trusted_documents = trusted_documents
    app.state.compiled_queries = schema.compiled_queries
    return app
