"""The pages and their files come from the service itself: nothing from another origin."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from service.web.assets import VENDOR_FILES, missing_vendor_files
from service.web.pages import graphiql_html
from tests.conftest import SqliteDatabases
from tests.graph.test_http_guard import open_client

# What a page loads (scripts, styles, icons), as opposed to where its links lead.
LOADED_URL = re.compile(r"""<(?:script|link)\b[^>]*?\b(?:src|href)=["']([^"']+)["']""")


@pytest.fixture
def client(sqlite_databases: SqliteDatabases) -> Iterator[TestClient]:
    with open_client(sqlite_databases) as client:
        yield client


def _local_urls(page: str) -> list[str]:
    urls = LOADED_URL.findall(page)
    assert urls
    for url in urls:
        assert "//" not in url, f"{url} loads from another origin"
    return [url for url in urls if not url.startswith("data:")]


@pytest.mark.parametrize(
    ("path", "accept"), [("/graphql", "text/html"), ("/", "text/html")], ids=["graphiql", "report"]
)
def test_page_loads_only_files_the_service_serves(
    client: TestClient, path: str, accept: str
) -> None:
    page = client.get(path, headers={"accept": accept})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for url in _local_urls(page.text):
        asset = client.get(f"/{url.removeprefix('./')}")
        assert asset.status_code == 200, url
        assert asset.content, url


def test_every_vendored_file_is_installed() -> None:
    """`make install` copies GraphiQL's files in; a copy without them says so on its page."""
    assert missing_vendor_files() == []


def test_graphiql_without_its_files_says_how_to_install_them(tmp_path: Path) -> None:
    assert missing_vendor_files(tmp_path) == list(VENDOR_FILES)


def test_graphiql_embeds_its_example_query_safely() -> None:
    page = graphiql_html('query { a } # </script><script>alert(1)</script> & "quotes"')
    embedded = page.split('<script type="application/json" id="example-query">')[1]
    embedded = embedded.split("</script>")[0]
    assert "<" not in embedded
    assert "&" not in embedded


def test_static_files_do_not_escape_their_folder(client: TestClient) -> None:
    for path in ("/static/../app.py", "/static/%2e%2e/app.py", "/static/vendor/../../app.py"):
        assert client.get(path).status_code == 404, path


def test_static_files_are_revalidated_and_not_sniffed(client: TestClient) -> None:
    for path in ("/static/report.js", "/static/vendor/graphiql.min.js"):
        response = client.get(path)
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-content-type-options"] == "nosniff"


def test_page_templates_are_served_only_by_their_routes(client: TestClient) -> None:
    """Served as static files they would lack the pages' headers (and GraphiQL's query)."""
    for path in ("/static/graphiql.html", "/static/report.html", "/templates/report.html"):
        assert client.get(path).status_code == 404, path
