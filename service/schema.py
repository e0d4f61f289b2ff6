"""The GraphQL schema served at /graphql."""

from __future__ import annotations

from importlib.metadata import version

import strawberry


def resolve_service_version() -> str:
    """Report the installed pomreport version."""
    return version("pomreport")


@strawberry.type
class Query:
    """Read access to the callback report and the objects behind it."""

    service_version: str = strawberry.field(
        resolver=resolve_service_version,
        description="Version of the pomreport service answering this request.",
    )


def create_schema() -> strawberry.Schema:
    """Build the schema; one per application."""
    return strawberry.Schema(query=Query)
