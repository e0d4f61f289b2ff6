"""CORS: pages of the allowed origins may call /graphql and the CSV download from a browser;
every other origin, and every origin while none is allowed, gets no CORS header at all."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import httpx2
import pytest
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from service.app import create_app
from service.auth.api_keys import create_api_key
from service.db.models.api_key import Role
from service.reports.callbacks_scheduled_details.csv_links import CSV_PATH
from service.settings import Settings
from tests.conftest import SqliteDatabases
from tests.graphql_client import on_database

WALLBOARD = "https://wallboard.example.com"
ELSEWHERE = "https://elsewhere.example.net"
QUERY = {"query": "{ campaigns { totalCount } }"}


@pytest.fixture
def sqlite_url(sqlite_databases: SqliteDatabases) -> Iterator[URL]:
    """A migrated database: CORS is the same on either store, so SQLite alone."""
    url = sqlite_databases.create(migrated=True)
    yield url
    sqlite_databases.drop(url)


@pytest.fixture
def viewer_key(sqlite_url: URL) -> str:
    async def issue(sessions: async_sessionmaker[AsyncSession]) -> str:
        _row, key = await create_api_key(sessions, Role.VIEWER)
        return key

    return on_database(sqlite_url, issue)


def _client(database_url: URL, *origins: str) -> TestClient:
    settings = Settings(database_url=database_url, expiry_sweep_seconds=0, cors_origins=origins)
    return TestClient(create_app(settings))


def _cors_headers(response: httpx2.Response) -> dict[str, str]:
    return {
        name: value
        for name, value in response.headers.items()
        if name.startswith("access-control-")
    }


def _preflight(client: TestClient, path: str, origin: str, method: str) -> httpx2.Response:
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )


@pytest.mark.parametrize(("path", "method"), [("/graphql", "POST"), (CSV_PATH, "GET")])
def test_a_preflight_from_an_allowed_origin_gets_the_allow_headers(
    sqlite_url: URL, path: str, method: str
) -> None:
    with _client(sqlite_url, WALLBOARD, "http://localhost:3000") as client:
        response = _preflight(client, path, WALLBOARD, method)
    assert response.status_code == 200
    allowed = _cors_headers(response)
    assert allowed["access-control-allow-origin"] == WALLBOARD
    assert method in allowed["access-control-allow-methods"].split(", ")
    headers = allowed["access-control-allow-headers"].lower().split(", ")
    assert {"authorization", "content-type", "x-request-id"} <= set(headers)
    assert "access-control-allow-credentials" not in allowed
    assert "Origin" in response.headers["vary"]
    assert response.headers["x-request-id"]


@pytest.mark.parametrize("path", ["/graphql", CSV_PATH])
def test_a_preflight_from_another_origin_gets_no_cors_header(sqlite_url: URL, path: str) -> None:
    with _client(sqlite_url, WALLBOARD) as client:
        for origin in (ELSEWHERE, WALLBOARD + ":8443", "null"):
            response = _preflight(client, path, origin, "POST")
            assert response.status_code == 400, origin
            assert _cors_headers(response) == {}, origin


def test_a_request_from_an_allowed_origin_may_be_read_with_its_request_id(
    sqlite_url: URL, viewer_key: str
) -> None:
    with _client(sqlite_url, WALLBOARD) as client:
        answer = client.post(
            "/graphql",
            json=QUERY,
            headers={"Origin": WALLBOARD, "Authorization": f"Bearer {viewer_key}"},
        )
        refused = client.post("/graphql", json=QUERY, headers={"Origin": WALLBOARD})
        download = client.get(
            CSV_PATH, headers={"Origin": WALLBOARD, "Authorization": f"Bearer {viewer_key}"}
        )
    assert answer.status_code == 200
    assert answer.json()["data"]["campaigns"]["totalCount"] == 0
    # The page may read the error of a call without a key too, and its request ID.
    assert refused.status_code == 401
    assert download.status_code == 200
    assert download.text.startswith("Campaign Name")
    for response in (answer, refused, download):
        allowed = _cors_headers(response)
        assert allowed["access-control-allow-origin"] == WALLBOARD
        exposed = allowed["access-control-expose-headers"].lower().split(", ")
        assert set(exposed) == {"x-request-id", "retry-after"}
        assert "access-control-allow-credentials" not in allowed
        assert "Origin" in response.headers["vary"]


def test_a_request_from_another_origin_runs_as_without_cors(
    sqlite_url: URL, viewer_key: str
) -> None:
    with _client(sqlite_url, WALLBOARD) as client:
        answer = client.post(
            "/graphql",
            json=QUERY,
            headers={"Origin": ELSEWHERE, "Authorization": f"Bearer {viewer_key}"},
        )
        same_origin = client.post(
            "/graphql", json=QUERY, headers={"Authorization": f"Bearer {viewer_key}"}
        )
        page = client.get("/", headers={"Origin": WALLBOARD})
    # Browsers keep the answer from the page; the server has nothing to refuse.
    assert answer.status_code == same_origin.status_code == 200
    assert _cors_headers(answer) == _cors_headers(same_origin) == {}
    # A cache must not hand this copy to an allowed origin, nor the other way round.
    assert "Origin" in answer.headers["vary"]
    assert "Origin" in same_origin.headers["vary"]
    # The HTML pages are not part of the API: no CORS even for an allowed origin.
    assert page.status_code == 200
    assert _cors_headers(page) == {}


def test_without_allowed_origins_no_response_has_a_cors_header(
    sqlite_url: URL, viewer_key: str
) -> None:
    with _client(sqlite_url) as client:
        preflight = _preflight(client, "/graphql", WALLBOARD, "POST")
        answer = client.post(
            "/graphql",
            json=QUERY,
            headers={"Origin": WALLBOARD, "Authorization": f"Bearer {viewer_key}"},
        )
    # As before CORS existed: /graphql takes GET and POST only.
    assert preflight.status_code == 405
    assert _cors_headers(preflight) == {}
    assert answer.status_code == 200
    assert _cors_headers(answer) == {}
    assert "vary" not in answer.headers


def test_serve_refuses_an_entry_that_is_not_an_origin_with_one_clear_line(
    sqlite_url: URL,
) -> None:
    environment = {
        **os.environ,
        "DATABASE_URL": sqlite_url.render_as_string(hide_password=False),
        "POMREPORT_CORS_ORIGINS": f"{WALLBOARD}, https://x.example.com/wallboard",
    }
    result = subprocess.run(
        [sys.executable, "-m", "service.cli", "serve"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "pomreport: configuration error: POMREPORT_CORS_ORIGINS entry "
        "'https://x.example.com/wallboard' is not an origin: an origin has no path, query or "
        "fragment; did you mean 'https://x.example.com'?"
    ]


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        (None, True),  # not a browser
        ("http://testserver", True),  # the service's own pages
        ("https://testserver", True),  # the same host behind a proxy that ends TLS
        (WALLBOARD, True),  # an allowed origin
        (ELSEWHERE, False),
        ("http://testserver.evil.example", False),
        ("null", False),
    ],
)
def test_a_websocket_opens_only_from_the_service_or_an_allowed_origin(
    sqlite_url: URL, viewer_key: str, origin: str | None, allowed: bool
) -> None:
    """Browsers apply no CORS to WebSockets: the handshake's Origin is checked instead."""
    headers = {"Authorization": f"Bearer {viewer_key}"}
    if origin is not None:
        headers["Origin"] = origin
    with _client(sqlite_url, WALLBOARD) as client:
        if allowed:
            with client.websocket_connect(
                "/graphql", subprotocols=["graphql-transport-ws"], headers=headers
            ) as socket:
                socket.send_json({"type": "connection_init"})
                assert socket.receive_json()["type"] == "connection_ack"
        else:
            with (
                pytest.raises(WebSocketDisconnect) as refused,
                client.websocket_connect(
                    "/graphql", subprotocols=["graphql-transport-ws"], headers=headers
                ),
            ):
                pass
            assert refused.value.code == 1008  # policy violation: the handshake gets 403


def test_a_websocket_from_another_site_is_refused_without_any_allowed_origin(
    sqlite_url: URL,
) -> None:
    with (
        _client(sqlite_url) as client,
        pytest.raises(WebSocketDisconnect),
        client.websocket_connect(
            "/graphql", subprotocols=["graphql-transport-ws"], headers={"Origin": ELSEWHERE}
        ),
    ):
        pass
