"""X-Request-ID (SPEC 6): taken when valid, made otherwise, returned on every response, and
written on every log line of the request."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import URL
from starlette.requests import Request
from starlette.responses import Response
from starlette.testclient import TestClient

from service.app import create_app
from service.settings import Settings
from tests.graphql_client import GraphQLClient
from tests.serve_process import serving

QUERY = "{ agents(first: 1) { totalCount } }"
MADE = re.compile(r"[0-9a-f]{32}")


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("abc-123_X.y", True),
        ("a" * 128, True),
        (None, False),
        ("", False),
        ("a" * 129, False),
        ("has space", False),
        ("semi;colon", False),
    ],
)
def test_a_valid_request_id_is_returned_and_any_other_is_replaced(
    empty_graphql: GraphQLClient, sent: str | None, kept: bool
) -> None:
    headers = {} if sent is None else {"X-Request-ID": sent}
    for response in (
        empty_graphql.client.post("/graphql", json={"query": QUERY}, headers=headers),
        empty_graphql.client.get("/healthz", headers=headers),
        empty_graphql.client.post("/graphql", content=b"{", headers=headers),  # refused early
    ):
        returned = response.headers["x-request-id"]
        assert returned == sent if kept else MADE.fullmatch(returned), (sent, returned)


def test_each_request_without_an_id_gets_its_own(empty_graphql: GraphQLClient) -> None:
    ids = {
        empty_graphql.client.post("/graphql", json={"query": QUERY}).headers["x-request-id"]
        for _ in range(5)
    }
    assert len(ids) == 5


def test_a_websocket_handshake_returns_its_request_id(empty_graphql: GraphQLClient) -> None:
    with empty_graphql.client.websocket_connect(
        "/graphql", subprotocols=["graphql-transport-ws"], headers={"X-Request-ID": "ws-1"}
    ) as websocket:
        websocket.send_json({"type": "connection_init"})
        assert websocket.receive_json()["type"] == "connection_ack"
        headers: list[tuple[bytes, bytes]] = websocket.extra_headers or []
        accepted = dict(headers)
        assert accepted[b"x-request-id"] == b"ws-1"


def test_serve_writes_the_request_id_on_the_requests_log_lines(tmp_path: Path) -> None:
    with serving(tmp_path) as server, httpx.Client(base_url=server.base_url) as client:
        answered = client.post(
            "/graphql", json={"query": QUERY}, headers={"X-Request-ID": "trace-7"}
        )
        assert answered.headers["x-request-id"] == "trace-7"
        refused = client.post(
            "/graphql",
            json={"query": "{ noSuchField callbacks(first: 501) { totalCount } }"},
            headers={"X-Request-ID": "trace-8"},
        )
        assert refused.json()["errors"]
    log = server.log
    # Not a terminal: one JSON object per line.
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    ours = [line for line in lines if line["request_id"] == "trace-7"]
    assert any("POST /graphql" in line["message"] for line in ours), lines
    (request,) = [line for line in ours if line["logger"] == "service.requests"]
    assert {key: request[key] for key in ("operation_type", "operation_name", "outcome")} == {
        "operation_type": "query",
        "operation_name": "",
        "outcome": "ok",
    }
    assert request["status"] == 200
    assert request["error_codes"] == []
    assert request["statements"] >= 1
    (failed,) = [
        line
        for line in lines
        if line["request_id"] == "trace-8" and line["logger"] == "service.requests"
    ]
    assert failed["outcome"] == failed["error_codes"][0]
    assert failed["error_codes"]
    assert request["role"] == "admin"  # open development mode
    assert "agents" not in str(request)  # nothing of the request's text
    # Lines outside any request carry "-".
    startup = [line for line in lines if "Application startup complete" in line["message"]]
    assert startup
    assert startup[0]["request_id"] == "-"


def test_the_500_of_an_unhandled_error_carries_the_request_id(database_url: URL) -> None:
    app = create_app(Settings(database_url=database_url, expiry_sweep_seconds=0))

    async def broken(_request: Request) -> Response:
        raise RuntimeError("a bug")

    app.add_route("/broken", broken)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/broken", headers={"X-Request-ID": "bug-1"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "bug-1"
