"""Request IDs (SPEC 6): taken from `X-Request-ID` when it is 1-128 characters of
`[A-Za-z0-9._-]`, made otherwise, returned on every response and written on every log line
of the request, so a client's report, a proxy's log and the service's log meet on one ID."""

from __future__ import annotations

import logging
import re
import uuid
from contextvars import ContextVar

import orjson
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "x-request-id"
_VALID = re.compile(r"[A-Za-z0-9._-]{1,128}")

# The ID of the request the current task works for; None outside any request.
REQUEST_ID: ContextVar[str | None] = ContextVar("REQUEST_ID", default=None)


def new_request_id() -> str:
    """A fresh ID: 32 hexadecimal digits."""
    return uuid.uuid4().hex


def current_request_id() -> str:
    """The current request's ID, or a fresh one outside any request."""
    return REQUEST_ID.get() or new_request_id()


def request_id_from(headers: Headers) -> str:
    """The ID a request sent, if it is a valid one; a fresh one otherwise."""
    sent = headers.get(HEADER)
    return sent if sent is not None and _VALID.fullmatch(sent) else new_request_id()


class RequestIds:
    """ASGI middleware: every HTTP request and WebSocket gets its ID, in `REQUEST_ID` for
    everything that runs for it, and back in the response's (or the handshake's) headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(Headers(scope=scope))
        token = REQUEST_ID.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.accept"):
                message.setdefault("headers", [])
                MutableHeaders(scope=message)[HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)


# What the service's log records may carry besides their message, as JSON fields.
LOG_FIELDS = (
    "operation_type",
    "operation_name",
    "outcome",
    "error_codes",
    "status",
    "duration_ms",
    "statements",
    "key_id",
    "role",
    "mutation",
    "status_changes",
    "status_change_count",
)


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line (when the output is not a terminal): time, level, logger,
    message, request ID, the fields of LOG_FIELDS a record has, and any exception."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or REQUEST_ID.get() or "-",
        }
        line.update((name, getattr(record, name)) for name in LOG_FIELDS if hasattr(record, name))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class RequestIdLogFilter(logging.Filter):
    """Gives every log record a `request_id` attribute: the current request's, or "-"."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get() or "-"
        return True
