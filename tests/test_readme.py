"""The README's example mutations work on the demo data `make run` seeds."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from service.seed.bulk_insert import seed_database
from service.seed.demo_data import SeedPlan
from service.settings import Settings
from tests.graphql_client import SEED_AS_OF, GraphQLClient, serve_graphql

README = Path(__file__).parents[1] / "README.md"
MUTATIONS = [
    block
    for block in re.findall(r"```graphql\n(.*?)```", README.read_text(), flags=re.DOTALL)
    if block.startswith("mutation")
]


@pytest.fixture
def demo_graphql(database_url: URL, monkeypatch: pytest.MonkeyPatch) -> Iterator[GraphQLClient]:
    """The API over demo data as `make run` seeds it (seed 1: the same campaigns, jobs,
    agents and first contacts whatever the number of callbacks), its clock at the seed's time."""
    plan = SeedPlan(callbacks=1200, seed=1, as_of=SEED_AS_OF)
    asyncio.run(seed_database(database_url, plan, progress=lambda _message: None))
    monkeypatch.setattr("service.graph.mutation.utc_now", lambda: SEED_AS_OF)
    yield from serve_graphql(
        Settings(database_url=database_url, expiry_sweep_seconds=0, open_without_keys=True)
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
