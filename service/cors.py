"""CORS: which other web origins' pages may call the API from a browser.

Deny by default: without allowed origins the app has no CORS middleware at all, and browsers
keep every other origin's scripts from reading its responses (and from sending the
`Authorization` or JSON `Content-Type` a call needs, which take a preflight). With
POMREPORT_CORS_ORIGINS set, Starlette's `CORSMiddleware` answers for those origins, on the
API's paths alone: /graphql and the CSV download. The HTML pages need no CORS.

Keys travel in the `Authorization` header a script sets itself, never in cookies, so the
API does not take credentialed requests (`Access-Control-Allow-Credentials` is never sent).
A request from an origin not on the list gets no CORS header at all, as if CORS were off:
its preflight is refused with 400 and its other requests run as they would without an
`Origin` (the browser then keeps the response from the page).
"""

from __future__ import annotations

from collections.abc import Collection

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# What a page may send beyond the safelisted headers: the key, and its own request ID.
ALLOWED_HEADERS = ("Authorization", "Content-Type", "X-Request-ID")
# What a page may read beyond the safelisted response headers: the request ID to report an
# error by, and how long to wait after a 503 (or a rate limit).
EXPOSED_HEADERS = ("X-Request-ID", "Retry-After")
# How long a browser may reuse a preflight's answer (Chromium caps it at 2 hours).
PREFLIGHT_MAX_AGE_SECONDS = 600


class CrossOriginApi:
    """ASGI middleware: CORS for the allowed origins on the API's paths."""

    def __init__(self, app: ASGIApp, *, origins: Collection[str], paths: Collection[str]) -> None:
        self.app = app
        self.origins = frozenset(origins)
        self.paths = frozenset(paths)
        self.cors = CORSMiddleware(
            app,
            allow_origins=sorted(self.origins),
            allow_methods=("GET", "POST"),
            allow_headers=ALLOWED_HEADERS,
            allow_credentials=False,
            expose_headers=EXPOSED_HEADERS,
            max_age=PREFLIGHT_MAX_AGE_SECONDS,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin in self.origins:
            await self.cors(scope, receive, send)
        elif (
            origin is not None
            and scope["method"] == "OPTIONS"
            and "access-control-request-method" in headers
        ):
            # Starlette's own refusal would still list the allowed methods and headers.
            refusal = PlainTextResponse(
                "this origin may not call the API from a browser\n",
                status_code=400,
                headers={"Vary": "Origin"},
            )
            await refusal(scope, receive, send)
        else:
            await self.app(scope, receive, _varying_on_origin(send))


def _varying_on_origin(send: Send) -> Send:
    """`send`, telling caches that the response depends on `Origin`: an allowed origin's copy
    of it carries CORS headers this one lacks, so neither may stand in for the other."""

    async def send_varying(message: Message) -> None:
        if message["type"] == "http.response.start":
            message.setdefault("headers", [])
            MutableHeaders(scope=message).add_vary_header("Origin")
        await send(message)

    return send_varying
