"""Root query fields: node lookup, lookups by natural key, and the root connections."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import strawberry
from aiodataloader import DataLoader
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
from service.graph.loaders import Loaders
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

KeyT = TypeVar("KeyT")
NodeT = TypeVar("NodeT")
RowT = TypeVar("RowT")


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


# What a global ID's type name leads to: the loader by the ID's key, the key's Python type, and
# the node made from the row.
_BY_GLOBAL_ID: dict[
    str, tuple[Callable[[Loaders], DataLoader[Any, Any]], type, Callable[[Any], Node]]
] = {
    "Campaign": (lambda loaders: loaders.campaign_by_name, str, CampaignNode.from_row),
    "Job": (lambda loaders: loaders.job_by_id, int, JobNode.from_row),
    "Agent": (lambda loaders: loaders.agent_by_id, str, AgentNode.from_row),
    "Contact": (lambda loaders: loaders.contact_by_id, str, ContactNode.from_row),
    "Callback": (lambda loaders: loaders.callback_by_id, str, CallbackNode.from_row),
    "CallbackAttempt": (lambda loaders: loaders.attempt_by_id, int, CallbackAttemptNode.from_row),
}


async def _found(
    loader: DataLoader[KeyT, RowT | None], key: KeyT, to_node: Callable[[RowT], NodeT]
) -> NodeT | None:
    """The node for a key, or None when no row (that the caller may see) has it."""
    row = await loader.load(key)
    return to_node(row) if row is not None else None


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
        if type_name not in _BY_GLOBAL_ID:
            raise BadUserInputError(f"id {id!r} is not an ID this API issued")
        loader, key_type, to_node = _BY_GLOBAL_ID[type_name]
        try:
            typed_key = key_type(key)
        except ValueError:
            raise BadUserInputError(f"id {id!r} is not an ID this API issued") from None
        return await _found(loader(info.context.loaders), typed_key, to_node)

    @strawberry.field(description="A campaign by its unique name.")
    async def campaign(self, info: Info, name: str) -> CampaignNode | None:
        return await _found(info.context.loaders.campaign_by_name, name, CampaignNode.from_row)

    @strawberry.field(description="A job by its POM job ID.")
    async def job(self, info: Info, job_id: int) -> JobNode | None:
        return await _found(info.context.loaders.job_by_id, job_id, JobNode.from_row)

    @strawberry.field(description="An agent by agent ID.")
    async def agent(self, info: Info, agent_id: str) -> AgentNode | None:
        return await _found(info.context.loaders.agent_by_id, agent_id, AgentNode.from_row)

    @strawberry.field(description="A contact by contact ID.")
    async def contact(self, info: Info, contact_id: str) -> ContactNode | None:
        return await _found(info.context.loaders.contact_by_id, contact_id, ContactNode.from_row)

    @strawberry.field(description="A callback by callback ID.")
    async def callback(self, info: Info, callback_id: str) -> CallbackNode | None:
        return await _found(info.context.loaders.callback_by_id, callback_id, CallbackNode.from_row)

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
