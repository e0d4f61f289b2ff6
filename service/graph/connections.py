"""Relay connections: generic GraphQL types and the code that fills them from keyset pages."""

from __future__ import annotations

import asyncio
import inspect
import types
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar, cast

import strawberry
from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.graph.context import Info
from service.graph.filtering import EntityQueryDeclaration, filter_condition, sort_keys
from service.graph.loaders import Loaders
from service.graph.pagination import (
    Page,
    PageRequest,
    SortKey,
    encode_cursor,
    fetch_page,
    fetch_pages_by_parent,
    page_request,
)

NodeT = TypeVar("NodeT")


@strawberry.type(description="Where a page sits in its list (Relay).")
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type(description="A node and the cursor to page on from it.")
class Edge(Generic[NodeT]):
    cursor: str
    node: NodeT


@dataclass(frozen=True, slots=True)
class LoadedPage(Generic[NodeT]):
    edges: list[Edge[NodeT]]
    page_info: PageInfo


@strawberry.type(description="One page of a list, with cursors (Relay) and the list's size.")
class Connection(Generic[NodeT]):
    # Both run only when selected: a query for totalCount alone loads no page.
    load_page: strawberry.Private[Callable[[], Awaitable[LoadedPage[NodeT]]]]
    count_rows: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="The page's objects, each with its cursor.")
    async def edges(self) -> list[Edge[NodeT]]:
        return (await self.load_page()).edges

    @strawberry.field(description="Where the page sits in the list.")
    async def page_info(self) -> PageInfo:
        return (await self.load_page()).page_info

    @strawberry.field(
        description="How many objects the whole list holds, over all pages; "
        "counted only when selected."
    )
    async def total_count(self) -> int:
        return await self.count_rows()


def build_connection(
    fetch: Callable[[], Awaitable[Page]],
    keys: Sequence[SortKey],
    to_node: Callable[[Any], NodeT],
    count_rows: Callable[[], Awaitable[int]],
) -> Connection[NodeT]:
    """A connection whose page is fetched once, on first use; `row[0]` carries the sort keys."""
    loaded: asyncio.Future[LoadedPage[NodeT]] | None = None

    async def load() -> LoadedPage[NodeT]:
        page = await fetch()
        edges = [Edge(cursor=encode_cursor(row[0], keys), node=to_node(row)) for row in page.rows]
        return LoadedPage(
            edges,
            PageInfo(
                has_next_page=page.has_next,
                has_previous_page=page.has_previous,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
        )

    async def load_once() -> LoadedPage[NodeT]:
        nonlocal loaded
        if loaded is None:
            loaded = asyncio.ensure_future(load())
        return await loaded

    return Connection(load_page=load_once, count_rows=count_rows)


async def root_connection(
    session_maker: async_sessionmaker[AsyncSession],
    declaration: EntityQueryDeclaration,
    statement: Select[*tuple[Any, ...]],
    condition: ColumnElement[bool],
    *,
    order_by: Sequence[Any] | None,
    request_arguments: dict[str, Any],
    max_page_size: int,
    to_node: Callable[[Any], NodeT],
) -> Connection[NodeT]:
    """A top-level connection: one statement for the page, one more for totalCount if asked."""
    keys = sort_keys(declaration, order_by)
    request = page_request(keys=keys, max_page_size=max_page_size, **request_arguments)

    async def fetch() -> Page:
        async with session_maker() as session:
            return await fetch_page(session, statement.where(condition), keys, request)

    entity = statement.column_descriptions[0]["entity"]
    return build_connection(
        fetch, keys, to_node, lambda: count_rows(session_maker, entity, condition)
    )


async def count_rows(
    session_maker: async_sessionmaker[AsyncSession],
    entity: type[Any],
    condition: ColumnElement[bool],
) -> int:
    """How many rows of an entity match a condition: one statement."""
    async with session_maker() as session:
        total = await session.scalar(select(func.count()).select_from(entity).where(condition))
    return int(total or 0)


async def nested_connection(
    loaders: Loaders,
    declaration: EntityQueryDeclaration,
    parent_attribute: str,
    parent_key: Any,
    arguments: ConnectionArguments,
    *,
    max_page_size: int,
    to_node: Callable[[Any], NodeT],
) -> Connection[NodeT]:
    """A connection under each parent: one statement for all parents' pages (window function)
    and one for all their counts, whatever the number of parents."""
    entity = declaration.model
    keys = sort_keys(declaration, arguments.order_by)
    request: PageRequest = page_request(keys=keys, max_page_size=max_page_size, **arguments.page)
    condition = filter_condition(declaration, arguments.filter)
    arguments_key = (
        entity.__name__,
        parent_attribute,
        repr(arguments.filter),
        tuple(keys_signature(keys)),
        request,
    )
    session_maker = loaders.session_maker

    async def load_pages(parent_keys: list[Any]) -> list[Page]:
        async with session_maker() as session:
            pages = await fetch_pages_by_parent(
                session, entity, parent_attribute, parent_keys, condition, keys, request
            )
        return [pages[key] for key in parent_keys]

    async def load_counts(parent_keys: list[Any]) -> list[int]:
        parent_column = getattr(entity, parent_attribute)
        async with session_maker() as session:
            rows = await session.execute(
                select(parent_column, func.count())
                .where(parent_column.in_(parent_keys), condition)
                .group_by(parent_column)
            )
            counts = {key: count for key, count in rows}
        return [counts.get(key, 0) for key in parent_keys]

    page_loader = loaders.for_arguments(("page", *arguments_key), load_pages)
    count_loader = loaders.for_arguments(("count", *arguments_key), load_counts)
    return build_connection(
        lambda: page_loader.load(parent_key), keys, to_node, lambda: count_loader.load(parent_key)
    )


def keys_signature(keys: Sequence[SortKey]) -> list[tuple[str, bool]]:
    """What identifies an order, for sharing loaders between parents."""
    return [(key.field.attribute, key.descending) for key in keys]


@dataclass(frozen=True, slots=True)
class ConnectionArguments:
    """What every filterable connection field takes: a filter, an order and a page."""

    filter: Any | None = None
    order_by: list[Any] | None = None
    first: int | None = None
    after: str | None = None
    last: int | None = None
    before: str | None = None

    @property
    def page(self) -> dict[str, Any]:
        """The page arguments alone, as `page_request` takes them."""
        return {"first": self.first, "after": self.after, "last": self.last, "before": self.before}


def _connection_of(node: str) -> Any:
    """`Connection[<node>]` for a node type named at run time (mypy sees only `Any`)."""
    lazy_node = cast(Any, Annotated)[node, strawberry.lazy("service.graph.nodes")]
    return cast(Any, Connection)[lazy_node]


ConnectionResolver = Callable[[Any, Info, ConnectionArguments], Awaitable[Connection[Any]]]


def connection_field(
    declaration: EntityQueryDeclaration,
    node: str,
    resolve: ConnectionResolver,
    *,
    description: str,
) -> Any:
    """A connection field with the arguments every such field takes, declared once:
    `filter`, `orderBy`, `first`, `after`, `last`, `before`.

    `node` names the node type in `service.graph.nodes` (lazily, since node types refer to each
    other); `resolve` gets the parent object, the request's info and the arguments.
    """

    async def resolver(
        self: Any,
        info: Info,
        filter: Any = None,
        order_by: Any = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[Any]:
        arguments = ConnectionArguments(filter, order_by, first, after, last, before)
        return await resolve(self, info, arguments)

    # Strawberry reads the arguments' GraphQL types from the signature; these depend on the
    # declaration, so the signature is written here rather than in the def above.
    annotations: dict[str, Any] = {
        "info": Info,
        "filter": declaration.filter_input | None,
        "order_by": types.GenericAlias(list, (declaration.order_input,)) | None,
        "first": int | None,
        "after": str | None,
        "last": int | None,
        "before": str | None,
    }
    signature = inspect.signature(resolver)
    resolver.__dict__["__signature__"] = signature.replace(
        parameters=[
            parameter.replace(annotation=annotations.get(parameter.name, inspect.Parameter.empty))
            for parameter in signature.parameters.values()
        ],
        return_annotation=_connection_of(node),
    )
    return strawberry.field(resolver=resolver, description=description)


def nested_connection_field(
    declaration: EntityQueryDeclaration,
    node: str,
    parent_attribute: str,
    parent_key: Callable[[Any], object],
    to_node: Callable[[Any], Any],
    *,
    description: str,
) -> Any:
    """A connection field on a node: the declared entity's rows whose `parent_attribute` is
    the node's `parent_key`, loaded for all parents of a request at once."""

    def resolve(parent: Any, info: Info, arguments: ConnectionArguments) -> Awaitable[Any]:
        return nested_connection(
            info.context.loaders,
            declaration,
            parent_attribute,
            parent_key(parent),
            arguments,
            max_page_size=info.context.settings.max_page_size,
            to_node=to_node,
        )

    return connection_field(declaration, node, resolve, description=description)
