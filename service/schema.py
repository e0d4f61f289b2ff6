"""The GraphQL schema served at /graphql."""

from __future__ import annotations

import strawberry

from service.error_codes import ErrorCodes
from service.graph.mutation import Mutation
from service.graph.nodes import (
    AgentNode,
    CallbackAttemptNode,
    CallbackNode,
    CampaignNode,
    ContactNode,
    JobNode,
)
from service.graph.query import Query
from service.graph.subscription import Subscription


def create_schema() -> strawberry.Schema:
    """Build the schema; one per application."""
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=[CampaignNode, JobNode, AgentNode, ContactNode, CallbackNode, CallbackAttemptNode],
        extensions=[ErrorCodes],
    )
