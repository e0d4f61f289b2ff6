"""Root query fields: node lookup, lookups by natural key, and the root connections."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

import strawberry
from sqlalchemy import ColumnElement, select

from service.db.models import Callback, Campaign
from service.errors import BadUserInputError
from service.graph import declarations
from service.graph.connections import (
    Connection,
    ConnectionArguments,
    connection_field,
    root_connection,
)
from service.graph.context import Info
from service.graph.filtering import EntityQueryDeclaration, filter_condition
from service.graph.nodes import (
    AgentNode,
    CallbackAttemptNode,
    CallbackNode,
    CampaignNode,
    ContactNode,
    JobNode,
    Node,
    parse_global_id,
)

NodeT = TypeVar("NodeT")


def _root_connection_field(declaration: EntityQueryDeclaration, node: type[Any]) -> Any:
    """A root connection field over every row of the declared entity that the filter admits."""
    from_row = node.from_row

    def resolve(_root: Any, info: Info, arguments: ConnectionArguments) -> Awaitable[Any]:
        return root_connection(
            info.context.scoped_session_maker,
            declaration,
            select(declaration.model),
            filter_condition(declaration, arguments.filter),
            order_by=arguments.order_by,
            request_arguments=arguments.page,
            max_page_size=info.context.settings.max_page_size,
            to_node=lambda row: from_row(row[0]),
        )

    return connection_field(
        declaration, node.__name__, resolve, description=declaration.root_list_description
    )


def _integer_key(key: str, id_value: str) -> int:
    try:
        return int(key)
    except ValueError:
        raise BadUserInputError(f"id {id_value!r} is not an ID this API issued") from None


async def callback_connection(
    info: Info, condition: ColumnElement[bool], *, order_by: Any, arguments: dict[str, Any]
) -> Connection[CallbackNode]:
    """Callbacks matching a condition, one page; each row's campaign comes in the same statement
    and primes the loader, so rows never need a query of their own for it."""
    loaders = info.context.loaders

    def to_node(row: Any) -> CallbackNode:
        callback, campaign = row
        loaders.campaign_by_id.prime(campaign.id, campaign)
        return CallbackNode.from_row(callback)

    return await root_connection(
        info.context.scoped_session_maker,
        declarations.CALLBACK,
        select(Callback, Campaign).join(Campaign, Callback.campaign_id == Campaign.id),
        condition,
        order_by=order_by,
        request_arguments=arguments,
        max_page_size=info.context.settings.max_page_size,
        to_node=to_node,
    )


@strawberry.type
class EntityQuery:
    """Root fields for the objects behind the report; the schema merges them into Query."""

    @strawberry.field(description="Any object by its global ID; null when it does not exist.")
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        type_name, key = parse_global_id(id)
        loaders = info.context.loaders
        if type_name == "Campaign":
            campaign = await loaders.campaign_by_name.load(key)
            return CampaignNode.from_row(campaign) if campaign else None
        if type_name == "Job":
            job = await loaders.job_by_id.load(_integer_key(key, id))
            return JobNode.from_row(job) if job else None
        if type_name == "Agent":
            agent = await loaders.agent_by_id.load(key)
            return AgentNode.from_row(agent) if agent else None
        if type_name == "Contact":
            contact = await loaders.contact_by_id.load(key)
            return ContactNode.from_row(contact) if contact else None
        if type_name == "Callback":
            callback = await loaders.callback_by_id.load(key)
            return CallbackNode.from_row(callback) if callback else None
        if type_name == "CallbackAttempt":
            attempt = await loaders.attempt_by_id.load(_integer_key(key, id))
            return CallbackAttemptNode.from_row(attempt) if attempt else None
        raise BadUserInputError(f"id {id!r} is not an ID this API issued")

    @strawberry.field(description="A campaign by its unique name.")
    async def campaign(self, info: Info, name: str) -> CampaignNode | None:
        campaign = await info.context.loaders.campaign_by_name.load(name)
        return CampaignNode.from_row(campaign) if campaign else None

    @strawberry.field(description="A job by its POM job ID.")
    async def job(self, info: Info, job_id: int) -> JobNode | None:
        job = await info.context.loaders.job_by_id.load(job_id)
        return JobNode.from_row(job) if job else None

    @strawberry.field(description="An agent by agent ID.")
    async def agent(self, info: Info, agent_id: str) -> AgentNode | None:
        agent = await info.context.loaders.agent_by_id.load(agent_id)
        return AgentNode.from_row(agent) if agent else None

    @strawberry.field(description="A contact by contact ID.")
    async def contact(self, info: Info, contact_id: str) -> ContactNode | None:
        contact = await info.context.loaders.contact_by_id.load(contact_id)
        return ContactNode.from_row(contact) if contact else None

    @strawberry.field(description="A callback by callback ID.")
    async def callback(self, info: Info, callback_id: str) -> CallbackNode | None:
        callback = await info.context.loaders.callback_by_id.load(callback_id)
        return CallbackNode.from_row(callback) if callback else None

    campaigns = _root_connection_field(declarations.CAMPAIGN, CampaignNode)
    jobs = _root_connection_field(declarations.JOB, JobNode)
    agents = _root_connection_field(declarations.AGENT, AgentNode)
    contacts = _root_connection_field(declarations.CONTACT, ContactNode)
    callbacks = connection_field(
        declarations.CALLBACK,
        "CallbackNode",
        lambda _root, info, arguments: callback_connection(
            info,
            filter_condition(declarations.CALLBACK, arguments.filter),
            order_by=arguments.order_by,
            arguments=arguments.page,
        ),
        description=declarations.CALLBACK.root_list_description,
    )
