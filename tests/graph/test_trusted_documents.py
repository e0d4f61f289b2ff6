"""Allow-list mode (POMREPORT_TRUSTED_DOCUMENTS): the manifest's documents run, sent whole or as
their hash, over POST, GET and WebSockets; anything else is refused before it is parsed, with no
statement; a manifest the service cannot use stops its start."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from sqlalchemy import URL
from starlette.testclient import WebSocketTestSession

from service.app import create_app
from service.auth.api_keys import create_api_key
from service.db.models.api_key import Role
from service.graph.persisted_queries import document_hash
from service.graph.trusted_documents import (
    SHIPPED_MANIFEST,
    ManifestError,
    build_manifest,
    manifest_text,
)
from service.media_types import JSON
from service.schema import create_schema
from service.settings import Settings, SettingsError, parse_database_url
from tests.events.test_subscription import wait_for_subscribers
from tests.graphql_client import GraphQLClient, _seeded_settings, on_database, serve_graphql

REPORT = "{ callbacksScheduledDetails(timePeriod: {preset: ALL}) { totalRecords } }\n"
MUTATION = 'mutation Expire { expireDueCallbacks(asOf: "2000-01-01T00:00:00Z") { changedCount } }\n'
SUBSCRIPTION = "subscription Changes { callbackStatusChanged { status } }\n"
UNTRUSTED = "{ callbacksScheduledDetails(timePeriod: {preset: TODAY}) { totalRecords } }"
INTROSPECTION = "query IntrospectionQuery { __schema { queryType { name } } }"
# The page's documents and the README's examples: the shipped manifest is built from these.
SHIPPED_SOURCES = [
    Path(__file__).parents[2] / "service" / "web" / "static" / "documents",
    Path(__file__).parents[2] / "docs" / "queries",
]


def _write_manifest(folder: Path, *documents: str) -> Path:
    for number, document in enumerate(documents):
        (folder / f"document{number}.graphql").write_text(document)
    manifest = folder / "manifest.json"
    manifest.write_text(manifest_text(build_manifest([folder], create_schema()._schema)))
    return manifest


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    return _write_manifest(tmp_path, REPORT, MUTATION, SUBSCRIPTION)


@pytest.fixture
def trusted(seeded_database_url: URL, manifest: Path) -> Iterator[GraphQLClient]:
    """The API over seeded data, running only the documents of `manifest`."""
    settings = dataclasses.replace(
        _seeded_settings(seeded_database_url), trusted_documents=manifest
    )
    yield from serve_graphql(settings)


def _extensions(document: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": document_hash(document)}}


def _post(api: GraphQLClient, body: dict[str, Any], accept: str | None = None) -> httpx2.Response:
    api.statements.clear()
    api.checkouts = 0
    return api.client.post(
        "/graphql", json=body, headers={"accept": accept or api.accept, **api.headers}
    )


def _get(api: GraphQLClient, parameters: dict[str, str]) -> httpx2.Response:
    api.statements.clear()
    return api.client.get("/graphql", params=parameters, headers={"accept": api.accept})


def _code(response: httpx2.Response) -> str:
    code: str = response.json()["errors"][0]["extensions"]["code"]
    return code


def test_trusted_document_runs_sent_whole_or_as_its_hash(trusted: GraphQLClient) -> None:
    app: Any = trusted.client.app
    _post(trusted, {"query": REPORT})  # plans it
    answered = app.state.compiled_queries.answered_directly
    whole = _post(trusted, {"query": REPORT})
    assert whole.status_code == 200
    total = whole.json()["data"]["callbacksScheduledDetails"]["totalRecords"]
    assert total > 0
    expected = {"data": {"callbacksScheduledDetails": {"totalRecords": total}}}
    statements = trusted.statements[:]
    # The hash alone, with the hash beside the document, and by GET: the same answer, from the
    # same statement (no lookup of the hash).
    for response in (
        _post(trusted, {"extensions": _extensions(REPORT)}),
        _post(trusted, {"query": REPORT, "extensions": _extensions(REPORT)}),
        _get(trusted, {"query": REPORT}),
        _get(trusted, {"extensions": json.dumps(_extensions(REPORT))}),
    ):
        assert response.json() == expected
        assert trusted.statements == statements
    assert (
        app.state.compiled_queries.answered_directly == answered + 3
    )  # the POSTs, on the compiled path

    mutation = _post(trusted, {"extensions": _extensions(MUTATION)})
    assert mutation.json() == {"data": {"expireDueCallbacks": {"changedCount": 0}}}
    refused = _get(trusted, {"extensions": json.dumps(_extensions(MUTATION))})
    assert refused.status_code == 405  # still a query only over GET


@pytest.mark.parametrize(
    "document",
    [UNTRUSTED, REPORT.strip(), INTROSPECTION, "{ not GraphQL", "query { " * 5000],
    ids=["another", "reformatted", "introspection", "unparsable", "huge"],
)
def test_untrusted_document_is_refused_before_parsing_with_no_statement(
    trusted: GraphQLClient, document: str
) -> None:
    for accept in (trusted.accept, JSON):
        response = _post(trusted, {"query": document}, accept)
        assert response.status_code == 403
        assert _code(response) == "FORBIDDEN"
        assert "trusted documents" in response.json()["errors"][0]["message"]
        assert trusted.statements == []
        assert trusted.checkouts == 0
    response = _get(trusted, {"query": document})
    assert response.status_code == 403
    assert _code(response) == "FORBIDDEN"
    assert trusted.statements == []


def test_unknown_hash_is_not_found_and_cannot_be_registered(trusted: GraphQLClient) -> None:
    """Apollo's client flow ends at its second request: the service stores nothing."""
    first = _post(trusted, {"extensions": _extensions(UNTRUSTED)}, JSON)
    assert first.status_code == 200
    assert first.json()["errors"][0] == {
        "message": "PersistedQueryNotFound",
        "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"},
    }
    second = _post(trusted, {"query": UNTRUSTED, "extensions": _extensions(UNTRUSTED)})
    assert second.status_code == 403
    assert _code(second) == "FORBIDDEN"
    third = _get(trusted, {"extensions": json.dumps(_extensions(UNTRUSTED))})
    assert _code(third) == "PERSISTED_QUERY_NOT_FOUND"
    assert trusted.statements == []


def test_trusted_hash_beside_another_document_is_a_bad_request(trusted: GraphQLClient) -> None:
    response = _post(trusted, {"query": UNTRUSTED, "extensions": _extensions(REPORT)})
    assert response.status_code == 400
    assert _code(response) == "BAD_REQUEST"
    assert trusted.statements == []


def test_untrusted_subscription_over_http_is_refused(trusted: GraphQLClient) -> None:
    untrusted = "subscription { callbackStatusChanged { callback { callbackId } } }"
    trusted.statements.clear()
    response = trusted.client.post(
        "/graphql", json={"query": untrusted}, headers={"accept": "text/event-stream"}
    )
    assert response.status_code == 403
    assert _code(response) == "FORBIDDEN"
    assert trusted.statements == []


# Valid JSON, but no UTF-8 text: a lone surrogate has no hash (it was an HTTP 500).
LONE_SURROGATE_BODY = b'{"query": "{ __typename } \\ud800"}'


def test_a_document_with_a_lone_surrogate_is_a_bad_request(trusted: GraphQLClient) -> None:
    trusted.statements.clear()
    response = trusted.client.post(
        "/graphql",
        content=LONE_SURROGATE_BODY,
        headers={"content-type": "application/json", "accept": trusted.accept},
    )
    assert response.status_code == 400
    assert _code(response) == "BAD_REQUEST"
    assert "lone surrogate" in response.json()["errors"][0]["message"]
    assert trusted.statements == []


def _start(websocket: WebSocketTestSession, protocol: str, payload: dict[str, Any]) -> None:
    websocket.send_json(
        {"id": "1", "type": "subscribe" if "transport" in protocol else "start", "payload": payload}
    )


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
def test_websocket_runs_trusted_subscriptions_only(trusted: GraphQLClient, protocol: str) -> None:
    with trusted.client.websocket_connect("/graphql", subprotocols=[protocol]) as websocket:
        websocket.send_json({"type": "connection_init"})
        assert websocket.receive_json()["type"] == "connection_ack"
        trusted.statements.clear()
        _start(websocket, protocol, {"query": "subscription { callbackStatusChanged { status } }"})
        refusal = websocket.receive_json()
        assert refusal["type"] == "error"
        errors = (
            refusal["payload"] if isinstance(refusal["payload"], list) else [refusal["payload"]]
        )
        assert errors[0]["extensions"]["code"] == "FORBIDDEN"
        _start(websocket, protocol, {"extensions": _extensions(UNTRUSTED)})
        refusal = websocket.receive_json()
        errors = (
            refusal["payload"] if isinstance(refusal["payload"], list) else [refusal["payload"]]
        )
        assert errors[0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
        _start(
            websocket,
            protocol,
            {"query": "subscription { callbackStatusChanged { status } } \ud800"},
        )
        refusal = websocket.receive_json()
        errors = (
            refusal["payload"] if isinstance(refusal["payload"], list) else [refusal["payload"]]
        )
        assert errors[0]["extensions"]["code"] == "BAD_REQUEST"
        assert trusted.statements == []
        # The manifest's subscription, by its hash alone.
        _start(websocket, protocol, {"extensions": _extensions(SUBSCRIPTION)})
        wait_for_subscribers(trusted, 1)


def test_refusals_are_counted_in_the_metrics(trusted: GraphQLClient) -> None:
    def refusals() -> dict[str, float]:
        text = trusted.client.get("/metrics").text
        counts = {}
        for line in text.splitlines():
            if line.startswith("pomreport_trusted_document_refusals_total{"):
                reason = line.split('reason="')[1].split('"')[0]
                counts[reason] = float(line.rsplit(" ", 1)[1])
        return counts

    before = refusals()
    _post(trusted, {"query": UNTRUSTED})
    _post(trusted, {"extensions": _extensions(UNTRUSTED)})
    after = refusals()
    assert after["not_trusted"] == before.get("not_trusted", 0) + 1
    assert after["hash_not_found"] == before.get("hash_not_found", 0) + 1


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "cannot read"),
        ("{", "is not a JSON file"),
        ("[]", "neither Apollo's persisted query manifest"),
        (json.dumps({"0" * 64: REPORT}), "is not the SHA-256 of its body"),
        (json.dumps({document_hash("{ nope }"): "{ nope }"}), "does not validate"),
        (json.dumps({document_hash("{ a"): "{ a"}), "does not parse"),
        (
            json.dumps({document_hash(REPORT + SUBSCRIPTION): REPORT + SUBSCRIPTION}),
            "holds 2 operations",
        ),
        (json.dumps({"format": "apollo-persisted-query-manifest", "operations": []}), "version"),
        ('{"%s": "{ __typename } \\ud800"}' % ("0" * 64), "lone surrogate"),
    ],
    ids=["missing", "json", "shape", "hash", "schema", "parse", "operations", "version", "text"],
)
def test_manifest_the_service_cannot_use_stops_its_start(
    tmp_path: Path, content: str | None, reason: str
) -> None:
    path = tmp_path / "manifest.json"
    if content is not None:
        path.write_text(content)
    settings = Settings(
        database_url=parse_database_url(f"sqlite:///{tmp_path / 'unused.db'}"),
        trusted_documents=path,
    )
    with pytest.raises(SettingsError, match="POMREPORT_TRUSTED_DOCUMENTS") as refused:
        create_app(settings)
    assert reason in str(refused.value)


def test_plain_manifest_of_hash_to_document_is_accepted(
    tmp_path: Path, seeded_database_url: URL
) -> None:
    path = tmp_path / "plain.json"
    path.write_text(json.dumps({document_hash(REPORT): REPORT}))
    settings = dataclasses.replace(_seeded_settings(seeded_database_url), trusted_documents=path)
    for api in serve_graphql(settings):
        assert _post(api, {"extensions": _extensions(REPORT)}).status_code == 200
        assert _post(api, {"query": UNTRUSTED}).status_code == 403


def test_build_refuses_a_file_of_two_operations(tmp_path: Path) -> None:
    (tmp_path / "two.graphql").write_text(REPORT + SUBSCRIPTION)
    with pytest.raises(ManifestError, match="put each operation in a file of its own"):
        build_manifest([tmp_path], create_schema()._schema)


def test_shipped_manifest_is_built_from_the_shipped_documents() -> None:
    built = manifest_text(build_manifest(SHIPPED_SOURCES, create_schema()._schema))
    assert SHIPPED_MANIFEST.read_text(encoding="utf-8") == built, (
        "the shipped manifest is stale: run `make trusted-documents`"
    )


def test_report_pages_documents_are_in_the_shipped_manifest() -> None:
    shipped = {entry["id"] for entry in json.loads(SHIPPED_MANIFEST.read_text())["operations"]}
    page_documents = sorted(SHIPPED_SOURCES[0].glob("*.graphql"))
    assert [path.stem for path in page_documents] == [
        "ReportPage",
        "ReportPageChanges",
        "ReportPageCsvLink",
        "ReportPageStatusCounts",
    ]
    for path in page_documents:
        assert document_hash(path.read_text(encoding="utf-8")) in shipped


def test_untrusted_document_with_keys_required_needs_a_key_then_runs_no_statement(
    seeded_database_url: URL, manifest: Path
) -> None:
    settings = Settings(
        database_url=seeded_database_url, expiry_sweep_seconds=0, trusted_documents=manifest
    )
    for api in serve_graphql(settings):
        _row, key = on_database(
            seeded_database_url, lambda sessions: create_api_key(sessions, Role.VIEWER)
        )
        without_key = _post(api, {"query": UNTRUSTED})
        assert without_key.status_code == 401
        assert _code(without_key) == "UNAUTHENTICATED"
        api.headers = {"Authorization": f"Bearer {key}"}
        assert _post(api, {"query": REPORT}).status_code == 200  # the key, looked up once
        for body, code in (
            ({"query": UNTRUSTED}, "FORBIDDEN"),
            ({"extensions": _extensions(UNTRUSTED)}, "PERSISTED_QUERY_NOT_FOUND"),
        ):
            assert _code(_post(api, body)) == code
            assert api.statements == []
