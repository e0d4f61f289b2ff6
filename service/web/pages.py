"""The HTML pages: the report page at / and GraphiQL at /graphql, and the routes of the files
they load."""

from __future__ import annotations

import functools
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from service.web.assets import STATIC, TEMPLATES, VENDOR, missing_vendor_files

# The pages load nothing from another origin; a browser enforces it.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)
PAGE_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}

MISSING_ASSETS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>pomreport · GraphiQL not installed</title></head>
<body style="font: 16px system-ui, sans-serif; max-width: 44rem; margin: 3rem auto">
<h1>GraphiQL's files are not installed</h1>
<p>This copy of pomreport lacks {missing}. <code>make install</code> fetches them from the npm
registry (pinned in <code>vendor/package-lock.json</code>) into the package, so the service
serves them itself.</p>
<p>The API itself works: POST GraphQL requests to <code>/graphql</code>.</p>
</body></html>
"""


@functools.cache
def graphiql_html(example_query: str) -> str:
    """GraphiQL's page, opening on example_query, or a page saying what is missing."""
    missing = missing_vendor_files()
    if missing:
        return MISSING_ASSETS_PAGE.format(missing=", ".join(missing))
    template = (TEMPLATES / "graphiql.html").read_text(encoding="utf-8")
    # JSON inside a script element: escape what could close it or start markup.
    embedded = (
        json.dumps(example_query)
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
    )
    return template.replace("{{EXAMPLE_QUERY}}", embedded)


async def report_page(_request: Request) -> Response:
    """The live Callbacks Scheduled Details report page for supervisors."""
    return FileResponse(TEMPLATES / "report.html", headers=PAGE_HEADERS)


class _PageFiles(StaticFiles):
    """Static files, revalidated on every load (an upgraded service's scripts are not mixed
    with a browser's cached ones) and never sniffed into another type."""

    def file_response(self, *arguments: Any, **keywords: Any) -> Response:
        response = super().file_response(*arguments, **keywords)
        response.headers["cache-control"] = "no-cache"
        response.headers["x-content-type-options"] = "nosniff"
        return response


def page_routes() -> list[BaseRoute]:
    """/ and the static files; vendored files under /static/vendor."""
    return [
        Route("/", report_page, methods=["GET"]),
        Mount("/static/vendor", _PageFiles(directory=VENDOR, check_dir=False)),
        Mount("/static", _PageFiles(directory=STATIC)),
    ]


def graphiql_response(example_query: str) -> HTMLResponse:
    """GraphiQL with the pages' security headers."""
    return HTMLResponse(graphiql_html(example_query), headers=PAGE_HEADERS)
