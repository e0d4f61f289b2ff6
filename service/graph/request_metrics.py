"""Metrics and the log line of GraphQL requests over HTTP (`service.metrics`): what the request
was and how it ended are noted by whoever answers it (the compiled endpoint, or Strawberry's
pipeline through `RequestMetricsExtension`), and recorded by `RequestMetrics` when the answer
is complete: counted, timed, and written as one line of the `service.requests` log (operation,
outcome, status, time, statements, the key's id and role; never the key or the variables)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

from graphql import GraphQLError
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.extensions import SchemaExtension

from service import metrics
from service.auth.http import authenticated_principal

request_log = logging.getLogger("service.requests")


@dataclass(slots=True)
class RequestNote:
    """What a GraphQL request was, and how it ended; "unknown" until someone says."""

    operation_type: str = "unknown"
    operation_name: str = ""
    outcome: str = ""
    error_codes: list[str] = field(default_factory=list)

    def executing(self, operation_type: str, operation_name: str | None) -> None:
        """Note a validated operation as it starts (a stream may never say how it ended)."""
        self.operation_type = operation_type
        self.operation_name = metrics.operation_name_label(operation_name)
        self.outcome = "ok"

    def answered(
        self, operation_type: str, operation_name: str | None, errors: list[GraphQLError] | None
    ) -> None:
        """Note a validated operation and its outcome: ok, or the first error's code."""
        self.executing(operation_type, operation_name)
        self.ended_with(errors)

    def ended_with(self, errors: list[GraphQLError] | None) -> None:
        """Note how the operation ended: every distinct error code, and its outcome (ok, or
        the first error's code)."""
        codes = (str((error.extensions or {}).get("code") or "error") for error in errors or ())
        self.error_codes = list(dict.fromkeys(codes))
        self.outcome = self.error_codes[0] if self.error_codes else "ok"


# The note of the request the current task answers.
REQUEST_NOTE: ContextVar[RequestNote | None] = ContextVar("REQUEST_NOTE", default=None)


class RequestMetrics:
    """ASGI middleware: time, statements and outcome of each GraphQL request over HTTP; open
    WebSockets."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            metrics.WEBSOCKETS.inc()
            try:
                await self.app(scope, receive, send)
            finally:
                metrics.WEBSOCKETS.dec()
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        note = RequestNote()
        REQUEST_NOTE.set(note)
        statements = metrics.start_counting_statements()
        status: int | None = None
        failed = False

        async def noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, noting_status)
        except BaseException:
            failed = True
            raise
        finally:
            if status is None:  # no answer: the client left first, or the service failed
                outcome = "http_500" if failed else "client_disconnected"
            else:  # refused before any GraphQL ran: its HTTP status
                outcome = note.outcome or f"http_{status}"
            metrics.REQUESTS.labels(note.operation_type, note.operation_name, outcome).inc()
            metrics.REQUEST_SECONDS.labels(note.operation_type).observe(
                time.perf_counter() - started
            )
            metrics.STATEMENTS.observe(statements[0])
            metrics.record_pool_use(scope["app"].state.engine.sync_engine.pool)
            principal = authenticated_principal(scope)
            duration_ms = round(1000 * (time.perf_counter() - started), 2)
            request_log.info(
                "%s %s: %s in %.1f ms, %d statements",
                note.operation_type,
                note.operation_name or "(anonymous)",
                outcome,
                duration_ms,
                statements[0],
                extra={
                    "operation_type": note.operation_type,
                    "operation_name": note.operation_name,
                    "outcome": outcome,
                    "error_codes": note.error_codes,
                    "status": status,
                    "duration_ms": duration_ms,
                    "statements": statements[0],
                    "key_id": principal.key_id if principal else None,
                    "role": principal.role.value if principal else None,
                },
            )


class RequestMetricsExtension(SchemaExtension):
    """Notes the operation and outcome of a request Strawberry's pipeline answers: its name
    only once it validated (a client cannot mint labels with documents that fail)."""

    def on_execute(self) -> Iterator[None]:
        note = REQUEST_NOTE.get()
        context = self.execution_context
        if note is not None:
            note.executing(context.operation_type.value, context.operation_name)
        yield

    def on_operation(self) -> Iterator[None]:
        yield
        note = REQUEST_NOTE.get()
        context = self.execution_context
        if note is None:
            return
        if note.operation_type == "unknown" and context.graphql_document is not None:
            with contextlib.suppress(RuntimeError):  # the document names no such operation
                note.operation_type = context.operation_type.value
        result = context.result
        note.ended_with(result.errors if result is not None else context.pre_execution_errors)
