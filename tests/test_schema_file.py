from __future__ import annotations

from pathlib import Path

from service.schema import create_schema

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schema.graphql"


def test_schema_file_matches_the_served_schema() -> None:
    served = create_schema().as_str().strip()
    assert SCHEMA_FILE.read_text().strip() == served, "schema.graphql is stale: run `make schema`"
