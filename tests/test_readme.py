"""The README's example mutations work on the demo data `make run` seeds, and every example
document runs in allow-list mode from the shipped manifest."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from service.graph.persisted_queries import document_hash
from service.graph.trusted_documents import SHIPPED_MANIFEST
from service.seed.bulk_insert import seed_database
from service.seed.demo_data import SeedPlan
from service.settings import Settings
from tests.events.test_subscription import wait_for_subscribers
from tests.graphql_client import SEED_AS_OF, GraphQLClient, serve_graphql

README = Path(__file__).parents[1] / "README.md"
MUTATIONS = [
    block
    for block in re.findall(r"```graphql\n(.*?)```", README.read_text(), flags=re.DOTALL)
    if block.startswith("mutation")
]


def _readme_documents() -> list[str]:
    """Every GraphQL document the README shows, exactly as a client following it sends it: the
    graphql blocks, the queries in curl's JSON bodies (and the $Q of the persisted query
    example), and the JavaScript example's query."""
    text = README.read_text()
    documents = re.findall(r"```graphql\n(.*?)```", text, flags=re.DOTALL)
    for block in re.findall(r"```(?:sh|js)\n(.*?)```", text, flags=re.DOTALL):
        documents += [
            json.loads(f'"{q}"') for q in re.findall(r'"query": ?"((?:[^"\\]|\\.)*)"', block)
        ]
        documents += re.findall(r"\bQ='([^']*)'", block)
        documents += re.findall(r"query: `([^`]*)`", block)
    return documents


README_DOCUMENTS = _readme_documents()
# Each README document as a file, the source of the shipped manifest (with the report page's).
QUERIES = README.parent / "docs" / "queries"


@pytest.fixture
def demo_graphql(database_url: URL, monkeypatch: pytest.MonkeyPatch) -> Iterator[GraphQLClient]:
    """The API over demo data as `make run` seeds it (seed 1: the same campaigns, jobs,
    agents and first contacts whatever the number of callbacks), its clock at the seed's time."""
    yield from _demo(database_url, monkeypatch, Settings(database_url=database_url))


@pytest.fixture
def trusted_demo_graphql(
    database_url: URL, monkeypatch: pytest.MonkeyPatch
) -> Iterator[GraphQLClient]:
    """The same, in allow-list mode with the shipped manifest."""
    settings = Settings(database_url=database_url, trusted_documents=SHIPPED_MANIFEST)
    yield from _demo(database_url, monkeypatch, settings)


def _demo(
    database_url: URL, monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> Iterator[GraphQLClient]:
    plan = SeedPlan(callbacks=1200, seed=1, as_of=SEED_AS_OF)
    asyncio.run(seed_database(database_url, plan, progress=lambda _message: None))
    monkeypatch.setattr("service.graph.mutation.utc_now", lambda: SEED_AS_OF)
    yield from serve_graphql(
        dataclasses.replace(settings, expiry_sweep_seconds=0, open_without_keys=True)
    )


def test_readme_has_example_mutations() -> None:
    assert MUTATIONS


@pytest.mark.parametrize("mutation", MUTATIONS)
def test_readme_example_mutation_succeeds_on_the_demo_data(
    demo_graphql: GraphQLClient, mutation: str
) -> None:
    data = demo_graphql.data(mutation)
    for result in data.values():
        assert result.get("callbackStatus", "ACTIVE") == "ACTIVE", result


def test_readme_documents_are_each_a_file_of_the_shipped_manifest() -> None:
    assert len(README_DOCUMENTS) >= 10
    files = {path.read_text(encoding="utf-8") for path in QUERIES.glob("*.graphql")}
    assert files == set(README_DOCUMENTS), "docs/queries differs from the README's examples"
    shipped = {entry["id"] for entry in json.loads(SHIPPED_MANIFEST.read_text())["operations"]}
    for document in README_DOCUMENTS:
        assert document_hash(document) in shipped, document


def test_readme_documents_run_in_allow_list_mode(trusted_demo_graphql: GraphQLClient) -> None:
    api = trusted_demo_graphql
    subscriptions = []
    for document in README_DOCUMENTS:
        if document.startswith("subscription"):
            subscriptions.append(document)
            continue
        body = api.execute(document)
        assert "errors" not in body, (document, body)
        assert all(value is not None for value in body["data"].values()) or "CB-1" in document
    assert len(subscriptions) == 3
    with api.client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as socket:
        socket.send_json({"type": "connection_init"})
        assert socket.receive_json()["type"] == "connection_ack"
        for number, document in enumerate(subscriptions, start=1):
            socket.send_json(
                {"id": str(number), "type": "subscribe", "payload": {"query": document}}
            )
            wait_for_subscribers(api, number)
    # And nothing else runs.
    refused = api.post("{ __typename }")
    assert refused.status_code == 403
    assert refused.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"


def _prose(text: str) -> str:
    """The README with its line breaks as spaces, so sentences read whole."""
    return " ".join(text.split())


def test_readme_says_the_spec_is_kept_outside_the_repository() -> None:
    """It once sent readers to SPEC.md as if the file were here."""
    prose = _prose(README.read_text())
    mentions = [match.start() for match in re.finditer(r"SPEC\.md", prose)]
    assert mentions
    for start in mentions:
        assert "outside this repository" in prose[start : start + 80]


def test_readme_says_what_a_time_without_an_offset_means() -> None:
    assert "A time sent without an offset is UTC" in _prose(README.read_text())


def test_readme_links_only_to_files_that_exist() -> None:
    for target in re.findall(r"\]\(([^)#]+)\)", README.read_text()):
        if not target.startswith(("http://", "https://")):
            assert (README.parent / target).exists(), target
