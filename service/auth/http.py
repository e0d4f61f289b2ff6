"""Authentication at the edge of /graphql: every HTTP request and WebSocket names its key.

HTTP requests carry `Authorization: Bearer <key>`; a missing or wrong key is refused with 401
before the body is read (the GraphiQL page itself is served to anyone: it holds no data), and a
key over its rate limit with 429. (A WebSocket's operations are counted one by one, as they
start: `service.graph.view`.)
WebSockets may carry the header on the upgrade request, or the key in the `connection_init`
payload as `{"Authorization": "Bearer <key>"}`, which browsers can send.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from service.auth.api_keys import ApiKeyRegistry, Principal
from service.auth.rate_limits import RateLimiter
from service.errors import (
    RETRY_AFTER_SECONDS,
    RateLimitedError,
    UnauthenticatedError,
    masked_error,
    send_graphql_error,
)

PRINCIPAL_STATE_KEY = "principal"


def authenticated_principal(scope: Scope) -> Principal | None:
    """The principal the authentication middleware found for a request, if any."""
    principal = scope.get("state", {}).get(PRINCIPAL_STATE_KEY)
    return principal if isinstance(principal, Principal) else None


class ApiKeyAuthentication:
    """ASGI middleware for the GraphQL route; the registry lives in `app.state.api_keys`, the
    rate limits in `app.state.rate_limits`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        authorization = Headers(scope=scope).get("authorization")
        if scope["type"] == "websocket" and authorization is None:
            await self.app(scope, receive, send)  # the key comes in connection_init
            return
        if scope["type"] == "http" and _is_graphiql_page(scope):
            await self.app(scope, receive, send)
            return
        registry: ApiKeyRegistry = scope["app"].state.api_keys
        try:
            principal = await registry.authenticate(authorization, proxied=is_proxied(scope))
        except UnauthenticatedError as error:
            await _refuse(scope, send, 401, error.message, "UNAUTHENTICATED")
            return
        except Exception as error:  # masked like any unexpected failure
            message, extensions = masked_error(error)
            status = 503 if extensions["code"] == "SERVICE_UNAVAILABLE" else 500
            await _refuse(scope, send, status, message, extensions["code"])
            return
        # Noted before the rate limit, so that a refusal's log line names its key.
        scope.setdefault("state", {})[PRINCIPAL_STATE_KEY] = principal
        if scope["type"] == "http":
            limiter: RateLimiter = scope["app"].state.rate_limits
            try:
                await limiter.check(principal)
            except RateLimitedError as error:
                await _refuse_over_limit(scope, send, error)
                return
        await self.app(scope, receive, send)


def is_proxied(scope: Scope) -> bool:
    """Whether a proxy forwarded the request (it says so in a forwarding header)."""
    headers = Headers(scope=scope)
    return any(name in headers for name in ("forwarded", "x-forwarded-for", "x-real-ip"))


def _is_graphiql_page(scope: Scope) -> bool:
    """A GET without a query: Strawberry answers it with the GraphiQL page (or an error). A GET
    with extensions may name a persisted query instead, and needs a key like any other."""
    if scope["method"] != "GET":
        return False
    parameters = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return "query" not in parameters and "extensions" not in parameters


async def _refuse_over_limit(scope: Scope, send: Send, error: RateLimitedError) -> None:
    await send_graphql_error(
        send,
        429,
        error.message,
        error.code,
        [(b"retry-after", str(error.retry_after).encode())],
        accept=Headers(scope=scope).get("accept"),
        extensions={"retryAfter": error.retry_after},
    )


async def _refuse(scope: Scope, send: Send, status: int, message: str, code: str) -> None:
    if scope["type"] == "websocket":
        # Closing before accepting refuses the handshake (HTTP 403 to the client).
        await send({"type": "websocket.close", "code": 4401, "reason": code})
        return
    extra = [(b"www-authenticate", b'Bearer realm="pomreport"')] if status == 401 else []
    if status == 503:
        extra.append((b"retry-after", str(RETRY_AFTER_SECONDS).encode()))
    await send_graphql_error(
        send, status, message, code, extra, accept=Headers(scope=scope).get("accept")
    )
