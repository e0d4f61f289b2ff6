"""HTTP-level checks in front of the GraphQL endpoint: malformed requests get a 4xx with a
GraphQL-shaped body (`{"errors": [...]}` with `extensions.code`), never a 500.

Strawberry answers some malformed bodies (`null`, `123`, invalid UTF-8, JSON nested thousands
deep) with a 500, and its other refusals with plain text; this guard checks the request first
and rewrites plain-text refusals into GraphQL errors. Mutations sent with GET get 405, as the
GraphQL-over-HTTP spec asks. A persisted query's document is filled in here, and in allow-list
mode (POMREPORT_TRUSTED_DOCUMENTS) any document the manifest lacks is refused here, before it is
parsed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable
from typing import Any
from urllib.parse import parse_qs, urlencode

from graphql import GraphQLError, OperationDefinitionNode, OperationType, parse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import (
    SUBSCRIPTION_TRANSPORTS,
    HTTPRequestError,
    graphql_error_body,
    send_graphql_error,
)
from service.graph.persisted_queries import (
    PersistedQueries,
    PersistedQueryNotFoundError,
    persisted_query_hash,
    resolve_document,
)
from service.graph.trusted_documents import TrustedDocuments
from service.media_types import (
    GRAPHQL_RESPONSE_JSON,
    response_media_type,
    wants_stream,
    without_streams,
)

logger = logging.getLogger(__name__)

_JSON_TYPES = ("application/json", "application/graphql-response+json")


# The scope key under which the guard leaves a POST's checked request object (a dict with
# a string query, and variables, operationName and extensions absent or of the right type).
GRAPHQL_REQUEST = "pomreport.graphql_request"


class GraphQLHTTPGuard:
    """ASGI middleware for the GraphQL route; WebSocket traffic passes through untouched."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_tokens: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_tokens = max_tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = b""
        try:
            if scope["method"] == "POST":
                body = await self._read_body(scope, receive)
                # Checked, and kept for the apps below, so they need not parse it again.
                payload = _check_post(Headers(scope=scope), body)
                if await self._fill_in_persisted_query(scope, payload):
                    body = json.dumps(payload).encode()
                scope[GRAPHQL_REQUEST] = payload
            elif scope["method"] == "GET":
                await self._fill_in_persisted_get(scope)
                _check_get(scope, self.max_tokens)
        except HTTPRequestError as error:
            await _send_error(send, error, Headers(scope=scope).get("accept"))
            return
        accept = Headers(scope=scope).get("accept")
        if wants_stream(accept) and not self._asks_for_subscription(scope):
            narrowed = without_streams(accept)
            if narrowed is not None:
                accept = narrowed
                scope["headers"] = [
                    *((name, value) for name, value in scope["headers"] if name != b"accept"),
                    (b"accept", narrowed.encode("latin-1")),
                ]
        answer = self.app(scope, _replay(body), _rewrite_plain_text_errors(send, accept))
        await _cancelled_when_client_leaves(answer, receive)

    async def _fill_in_persisted_query(self, scope: Scope, payload: dict[str, Any]) -> bool:
        """Put a persisted query's document into the request, so that the limits, the compiled
        path and Strawberry below see an ordinary request; in allow-list mode, refuse any
        document the manifest lacks. False when the request is left as it came."""
        extensions = payload.get("extensions")
        trusted: TrustedDocuments | None = scope["app"].state.trusted_documents
        if trusted is not None:
            # From the manifest alone, before the document is parsed and without a statement;
            # nothing is stored, so a client cannot add a document.
            payload["query"] = trusted.resolve(payload.get("query"), extensions)
        else:
            sha256_hash = persisted_query_hash(extensions)
            if sha256_hash is None:
                return False
            store: PersistedQueries = scope["app"].state.persisted_queries
            payload["query"] = await resolve_document(
                store, sha256_hash, payload.get("query"), max_bytes=self.max_body_bytes
            )
        if isinstance(extensions, dict) and "persistedQuery" in extensions:
            # Done with: the compiled path leaves requests with other extensions to Strawberry.
            rest = {name: value for name, value in extensions.items() if name != "persistedQuery"}
            if rest:
                payload["extensions"] = rest
            else:
                payload.pop("extensions")
        # In allow-list mode the apps below read the request as checked, re-encoded, whatever
        # the JSON sent (a duplicated "query" key, say) might mean to another parser.
        return True

    async def _fill_in_persisted_get(self, scope: Scope) -> None:
        """The same for a GET, whose extensions come URL-encoded as JSON."""
        parameters = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        extensions_text = parameters.get("extensions")
        if not extensions_text:
            trusted: TrustedDocuments | None = scope["app"].state.trusted_documents
            queries = parameters.get("query")
            if trusted is not None and queries and len(queries) == 1:
                trusted.resolve(queries[0], None)
            return
        if len(extensions_text) > 1:
            return  # repeated parameters are refused by _check_get
        try:
            extensions = json.loads(extensions_text[0])
        except (ValueError, RecursionError):
            raise HTTPRequestError(400, "extensions must be URL-encoded JSON") from None
        payload: dict[str, Any] = {
            name: values[0] for name, values in parameters.items() if name != "extensions"
        }
        payload["extensions"] = extensions
        if not await self._fill_in_persisted_query(scope, payload):
            return
        if "extensions" in payload:
            payload["extensions"] = json.dumps(payload["extensions"])
        scope["query_string"] = urlencode(payload).encode("latin-1")

    def _asks_for_subscription(self, scope: Scope) -> bool:
        """Whether a POST's chosen operation is a subscription (GETs of one were refused)."""
        payload = scope.get(GRAPHQL_REQUEST)
        if not isinstance(payload, dict):
            return False
        operation = chosen_operation_type(
            payload["query"], payload.get("operationName"), self.max_tokens
        )
        return operation is OperationType.SUBSCRIPTION

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise _too_large(self.max_body_bytes)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise HTTPRequestError(400, "the client disconnected before sending the body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _too_large(self.max_body_bytes)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _too_large(limit: int) -> HTTPRequestError:
    return HTTPRequestError(413, f"the request body is larger than {limit} bytes", "BAD_REQUEST")


def _check_post(headers: Headers, body: bytes) -> dict[str, Any]:
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in _JSON_TYPES:
        raise HTTPRequestError(
            415, f"send the request as application/json, not {content_type or 'no content type'}"
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPRequestError(400, "the request body is not valid UTF-8") from None
    try:
        payload = json.loads(text)
    except RecursionError:
        raise HTTPRequestError(400, "the request body's JSON is nested too deeply") from None
    except ValueError:
        raise HTTPRequestError(400, "the request body is not valid JSON") from None
    _check_request_object(payload)
    request: dict[str, Any] = payload
    return request


def _check_request_object(payload: Any) -> None:
    if not isinstance(payload, dict):
        raise HTTPRequestError(
            400, "the request body must be a JSON object with a query (batching is off)"
        )
    extensions = payload.get("extensions")
    persisted = isinstance(extensions, dict) and "persistedQuery" in extensions
    # A persisted query may come without its document (the guard fills it in).
    if not isinstance(payload.get("query"), str) and not (
        persisted and payload.get("query") is None
    ):
        raise HTTPRequestError(400, "the request needs a query, as a string")
    if payload.get("variables") is not None and not isinstance(payload["variables"], dict):
        raise HTTPRequestError(400, "variables must be a JSON object")
    if payload.get("operationName") is not None and not isinstance(payload["operationName"], str):
        raise HTTPRequestError(400, "operationName must be a string")
    if payload.get("extensions") is not None and not isinstance(payload["extensions"], dict):
        raise HTTPRequestError(400, "extensions must be a JSON object")


def _check_get(scope: Scope, max_tokens: int) -> None:
    parameters = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    repeated = sorted(name for name, values in parameters.items() if len(values) > 1)
    if repeated:
        raise HTTPRequestError(400, f"give each parameter once; repeated: {', '.join(repeated)}")
    query = (parameters.get("query") or [None])[0]
    if query is None:
        return  # GraphiQL, or Strawberry's own answer to a GET without a query
    wanted = (parameters.get("operationName") or [None])[0]
    operation = chosen_operation_type(query, wanted, max_tokens)
    if operation is OperationType.SUBSCRIPTION:
        raise HTTPRequestError(
            405, f"subscriptions are not allowed with GET: {SUBSCRIPTION_TRANSPORTS}"
        )
    if operation is not None and operation is not OperationType.QUERY:
        raise HTTPRequestError(405, f"{operation.value}s are not allowed with GET; send a POST")


def chosen_operation_type(
    query: str, operation_name: str | None, max_tokens: int
) -> OperationType | None:
    """The type of the operation a request runs, or None when its document does not parse
    (within the token limit: Strawberry reports why) or names no such operation."""
    try:
        document = parse(query, no_location=True, max_tokens=max_tokens)
    except GraphQLError:
        return None
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        named = definition.name.value if definition.name else None
        if operation_name is None or named == operation_name:
            return definition.operation
    return None


async def _cancelled_when_client_leaves(answer: Awaitable[None], receive: Receive) -> None:
    """Answer the request, but stop (statements included) as soon as the client disconnects:
    nobody would read the answer, and the connections it holds are better given to others."""
    answering = asyncio.ensure_future(answer)
    watching = asyncio.ensure_future(_disconnect(receive))
    try:
        await asyncio.wait({answering, watching}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watching.cancel()
        if not answering.done():
            answering.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
    if answering.cancelled() or not answering.done():
        with contextlib.suppress(asyncio.CancelledError):
            await answering
        logger.info("the client disconnected; its request was cancelled")
        return
    answering.result()  # the answer's own failure, if any


async def _disconnect(receive: Receive) -> None:
    """Return once the client has gone (the server says so once the body has been read)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def _replay(body: bytes) -> Receive:
    """The body, then nothing until the request ends: the guard alone listens for the client
    leaving (and cancels the answer then), so a streamed answer (a subscription over Server-Sent
    Events) is not told the client left when it has not."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            await asyncio.get_running_loop().create_future()  # until cancelled with the answer
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def _send_error(send: Send, error: HTTPRequestError, accept: str | None) -> None:
    extra_headers = [(b"allow", b"POST")] if error.status == 405 else []
    status = error.status
    if isinstance(error, PersistedQueryNotFoundError):
        # A request error like a validation failure: 400 under the GraphQL response type, 200
        # for application/json clients (Apollo's clients retry on the code either way).
        status = 400 if response_media_type(accept) == GRAPHQL_RESPONSE_JSON else 200
    await send_graphql_error(send, status, error.message, error.code, extra_headers, accept=accept)


def _rewrite_plain_text_errors(send: Send, accept: str | None) -> Send:
    """Strawberry refuses some requests in plain text; give clients a GraphQL error instead."""
    status = 200
    plain = False

    async def rewrite(message: Message) -> None:
        nonlocal status, plain
        if message["type"] == "http.response.start":
            status = message["status"]
            headers = Headers(raw=message["headers"])
            plain = status >= 400 and headers.get("content-type", "").startswith("text/plain")
            if plain:
                return  # sent with the body, once its length is known
        elif message["type"] == "http.response.body" and plain:
            text = message.get("body", b"").decode("utf-8", "replace").strip()
            body = graphql_error_body(text or "bad request", "BAD_REQUEST")
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-type", response_media_type(accept).encode()),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await send(message)

    return rewrite
