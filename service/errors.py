"""Every error a client can see: the SPEC section 4 codes, the errors that carry them, how
GraphQL's own errors get a code, and how unexpected failures are masked."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterator, Mapping

import asyncpg
from graphql import GraphQLError
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.types import Send
from strawberry.extensions import SchemaExtension
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError

from service.media_types import response_media_type
from service.request_ids import current_request_id

logger = logging.getLogger(__name__)


# Client errors ----------------------------------------------------------------------------


class ClientError(GraphQLError):
    """An error caused by the request; `code` goes to `extensions.code`."""

    code = "BAD_USER_INPUT"

    def __init__(self, message: str) -> None:
        super().__init__(message, extensions={"code": self.code})


class BadUserInputError(ClientError):
    """An argument has a value the service cannot use; the message says what to fix."""

    code = "BAD_USER_INPUT"


class BadRequestError(ClientError):
    """The request is not one the endpoint can answer the way it was sent."""

    code = "BAD_REQUEST"


# How a client can receive a subscription: every way the service offers.
SUBSCRIPTION_TRANSPORTS = (
    "subscribe over a WebSocket to /graphql (graphql-transport-ws, or legacy graphql-ws), or "
    "POST with 'Accept: text/event-stream' (GraphQL over Server-Sent Events) or "
    "'Accept: multipart/mixed;subscriptionSpec=1.0' (multipart subscriptions)"
)


class NotFoundError(ClientError):
    """The request names an object that does not exist."""

    code = "NOT_FOUND"


class ConflictError(ClientError):
    """The request contradicts the current state, e.g. changing a terminal callback."""

    code = "CONFLICT"


class UnauthenticatedError(ClientError):
    """The request carries no API key, or one the service does not know (or has revoked)."""

    code = "UNAUTHENTICATED"


class ForbiddenError(ClientError):
    """The caller's role may not do what the request asks."""

    code = "FORBIDDEN"


class QueryTooComplexError(ClientError):
    """The operation is over one of the query limits; the message says which."""

    code = "QUERY_TOO_COMPLEX"


class PageSizeError(QueryTooComplexError):
    """A page size out of range (negative, or over the maximum), refused with the other limits
    before anything runs."""

    code = "BAD_USER_INPUT"


class CursorExpiredError(ClientError):
    """A subscription asked to resume after a change the change log no longer keeps."""

    code = "CURSOR_EXPIRED"


class RateLimitedError(ClientError):
    """The caller's key made more requests than its role's rate limit allows; it may try again
    in `retry_after` seconds (HTTP 429 with `Retry-After`, and `extensions.retryAfter`)."""

    code = "RATE_LIMITED"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.extensions = {"code": self.code, "retryAfter": retry_after}


class SubscriberTooSlowError(ClientError):
    """The subscriber did not keep up with its changes and was closed."""

    code = "SUBSCRIBER_TOO_SLOW"


# Codes for GraphQL's own errors, and masking ----------------------------------------------


def _with_code(errors: list[GraphQLError] | None, code: str) -> None:
    for error in errors or []:
        if not (error.extensions or {}).get("code"):
            error.extensions = {**(error.extensions or {}), "code": code}


class ErrorCodes(SchemaExtension):
    """Marks parse failures, validation failures and variables of the wrong type."""

    def on_parse(self) -> Iterator[None]:
        yield
        errors = self.execution_context.pre_execution_errors or []
        # graphql-core stops parsing at the token or nesting limit with a syntax error.
        too_big = ("tokens", "nested too deeply")
        _with_code([e for e in errors if any(w in e.message for w in too_big)], "QUERY_TOO_COMPLEX")
        _with_code(errors, "GRAPHQL_PARSE_FAILED")

    def on_validate(self) -> Iterator[None]:
        yield
        _with_code(self.execution_context.pre_execution_errors, "GRAPHQL_VALIDATION_FAILED")

    def on_execute(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is not None and result.errors:
            # Variable coercion fails before any resolver runs: no path, nothing executed.
            _with_code([e for e in result.errors if e.path is None], "BAD_USER_INPUT")


def _causes(error: BaseException) -> Iterator[BaseException]:
    """An exception and every exception it came from, each once. A client's error ends the
    chain (the request was the mistake, whatever failed inside while finding that out: a time
    zone looked up as a missing file is an OSError), and so does `raise ... from None`."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, ClientError):
            return
        seen.add(id(current))
        yield current
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )


def is_database_unavailable(error: BaseException) -> bool:
    """Whether an exception (or one it came from) says the database cannot be reached."""
    for current in _causes(error):
        if isinstance(current, OSError | TimeoutError | ConnectionError | DisconnectionError):
            return True
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, asyncpg.CannotConnectNowError | asyncpg.ConnectionDoesNotExistError):
            return True
    return False


def is_recovery_conflict(error: BaseException) -> bool:
    """Whether a statement was cancelled by a transaction rollback error (SQLSTATE class 40):
    on a hot standby, what a read gets when the WAL it replays conflicts with the read (rows
    the primary vacuumed away, a lock taken there); a read on the primary never gets one."""
    return any(isinstance(current, asyncpg.TransactionRollbackError) for current in _causes(error))


def _sqlite_error_code(error: BaseException) -> int | None:
    """SQLite's primary result code of an sqlite3 error (its extended code's low byte)."""
    code = getattr(error, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def is_database_busy(error: BaseException) -> bool:
    """Whether a statement gave up waiting for SQLite's write lock (SQLITE_BUSY, "database is
    locked") once the busy timeout ran out: other writers held it all that time."""
    return any(
        isinstance(current, sqlite3.Error) and _sqlite_error_code(current) == sqlite3.SQLITE_BUSY
        for current in _causes(error)
    )


def is_statement_timeout(error: BaseException) -> bool:
    """Whether the database stopped a statement that ran past the statement timeout:
    PostgreSQL's query_canceled, or SQLITE_INTERRUPT from the SQLite engine's progress handler
    (service.db.engines.SqliteStatementTimeout; nothing else interrupts a statement)."""
    for current in _causes(error):
        if isinstance(current, asyncpg.QueryCanceledError):
            return True
        if isinstance(current, sqlite3.Error) and (
            _sqlite_error_code(current) == sqlite3.SQLITE_INTERRUPT
        ):
            return True
    return False


def is_service_unavailable(error: BaseException) -> bool:
    """Whether an exception means the service cannot answer for now: the database is out of
    reach, no pooled connection came free in time, the write lock stayed taken for the busy
    timeout, or a statement ran past the statement timeout. Retrying later may succeed."""
    return (
        isinstance(error, PoolTimeoutError)
        or is_database_unavailable(error)
        or is_database_busy(error)
        or is_statement_timeout(error)
    )


def mask_unexpected_errors(errors: list[GraphQLError]) -> None:
    """Keep client errors as they are; turn anything else into a masked error with a code."""
    for error in errors:
        original = error.original_error
        if original is None or isinstance(original, GraphQLError):
            continue
        if isinstance(original, CannotGetOperationTypeError | InvalidOperationTypeError):
            # The client's mistake, e.g. a query over legacy graphql-ws (subscriptions only).
            error.extensions = {"code": "BAD_REQUEST"}
            continue
        error.message, error.extensions = masked_error(original)


def masked_error(original: BaseException) -> tuple[str, dict[str, str]]:
    """The message and extensions a client sees for an unexpected exception.

    An unreachable database, a pool with no connection free in time, SQLite's write lock held
    by others for the whole busy timeout, or a statement cancelled at the statement timeout (on
    either store) is SERVICE_UNAVAILABLE (HTTP 503 with Retry-After); every other unexpected
    failure becomes INTERNAL_SERVER_ERROR with the request's ID (its X-Request-ID), logged in
    full under that ID. No message carries SQL, a traceback or a path.
    """
    unavailable = {"code": "SERVICE_UNAVAILABLE"}
    if isinstance(original, PoolTimeoutError):
        logger.warning("no database connection free in time: %s", original)
        return "the service is busy; try again shortly", unavailable
    if is_database_unavailable(original):
        logger.warning("database unavailable: %s", original)
        return "the database is unavailable; try again shortly", unavailable
    if is_database_busy(original):
        logger.warning("database write lock not free in time: %s", original)
        return "the database is busy with other writes; try again shortly", unavailable
    if is_statement_timeout(original):
        logger.warning("statement cancelled at the statement timeout: %s", original)
        return (
            "the database took too long to answer and the request was cancelled; try again "
            "shortly, or ask for less (a shorter period, fewer rows)",
            unavailable,
        )
    request_id = current_request_id()
    logger.error("request %s failed", request_id, exc_info=original)
    return (
        f"internal server error (request id {request_id})",
        {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
    )


# Seconds a client is asked to wait before retrying a SERVICE_UNAVAILABLE answer (HTTP 503).
RETRY_AFTER_SECONDS = 1


# Requests that are not GraphQL over HTTP at all -------------------------------------------


class HTTPRequestError(Exception):
    """A request that is not valid GraphQL over HTTP; answered with `status` and no GraphQL."""

    def __init__(self, status: int, message: str, code: str = "BAD_REQUEST") -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def graphql_error_body(
    message: str, code: str, extensions: Mapping[str, object] | None = None
) -> bytes:
    """A GraphQL-shaped error response body; `extensions` beside the code, if any."""
    error = {"message": message, "extensions": {"code": code, **(extensions or {})}}
    return json.dumps({"errors": [error]}).encode()


async def send_graphql_error(
    send: Send,
    status: int,
    message: str,
    code: str,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
    *,
    accept: str | None = None,
    extensions: Mapping[str, object] | None = None,
) -> None:
    """Answer an HTTP request with a GraphQL-shaped error body, in the JSON media type the
    request's `accept` header asks for."""
    body = graphql_error_body(message, code, extensions)
    media_type = response_media_type(accept).encode()
    headers = [(b"content-type", media_type), (b"content-length", str(len(body)).encode())]
    headers.extend(extra_headers or [])
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
