"""Keyset (cursor) pagination over any ordered SQL statement, Relay style.

A page is the rows strictly after (or before) a cursor in the requested order. The order always
ends with the entity's unique key, so every row has one place and pages neither skip nor repeat
rows when others are inserted concurrently. A cursor carries the sort values of its row and a
fingerprint of the order it belongs to; one from another order is refused.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import enum
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import ColumnElement, FromClause, Select, Subquery, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, aliased

from service.errors import BadUserInputError

DEFAULT_PAGE_SIZE = 100

# A mapped attribute (Callback.created_at) or any column expression.
SqlColumn = ColumnElement[Any] | InstrumentedAttribute[Any]


class OrderedField(Protocol):
    """What an order needs of a field: its column, its Python type and the ORM attribute
    that holds its value on a row."""

    @property
    def column(self) -> SqlColumn: ...

    @property
    def value_type(self) -> type: ...

    @property
    def attribute(self) -> str: ...


@dataclass(frozen=True, slots=True)
class SortKey:
    """One field of an order, and its direction."""

    field: OrderedField
    descending: bool = False


@dataclass(frozen=True, slots=True)
class PageRequest:
    """Validated `first`/`after` or `last`/`before` arguments."""

    limit: int
    cursor_values: tuple[Any, ...] | None
    backward: bool
    has_cursor: bool


def page_request(
    *,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
    keys: Sequence[SortKey],
    max_page_size: int,
) -> PageRequest:
    """Check the page arguments against the order and the page size limit."""
    if first is not None and last is not None:
        raise BadUserInputError("give either first (with after) or last (with before), not both")
    if after is not None and before is not None:
        raise BadUserInputError("give either after or before, not both")
    if (last is not None and after is not None) or (first is not None and before is not None):
        raise BadUserInputError("page forward with first/after or backward with last/before")
    backward = last is not None or before is not None
    size = last if backward else first
    argument = "last" if backward else "first"
    if size is None:
        size = min(DEFAULT_PAGE_SIZE, max_page_size)
    if size < 0:
        raise BadUserInputError(f"{argument} must not be negative, got {size}")
    if size > max_page_size:
        raise BadUserInputError(
            f"{argument} must be at most {max_page_size}, got {size}; page through with cursors"
        )
    cursor = before if backward else after
    values = decode_cursor(cursor, keys, "before" if backward else "after") if cursor else None
    return PageRequest(limit=size, cursor_values=values, backward=backward, has_cursor=bool(cursor))


def order_clauses(
    keys: Sequence[SortKey], *, backward: bool, on: FromClause | None = None
) -> list[ColumnElement[Any]]:
    """ORDER BY terms; reversed when paging backward. `on`: a subquery holding the entity's
    columns by their attribute names, to order its rows instead of the table's."""
    clauses: list[ColumnElement[Any]] = []
    for key in keys:
        column = key.field.column if on is None else on.c[key.field.attribute]
        clauses.append(column.desc() if key.descending != backward else column.asc())
    return clauses


def after_cursor_condition(
    keys: Sequence[SortKey], values: Sequence[Any], *, backward: bool
) -> ColumnElement[bool]:
    """Rows strictly beyond the cursor in the (possibly reversed) order, as one SQL condition.

    Expanded as (k1 > v1) OR (k1 = v1 AND k2 > v2) OR ..., which works for mixed directions.
    """
    alternatives = []
    for position, key in enumerate(keys):
        equal_prefix = [keys[i].field.column == values[i] for i in range(position)]
        beyond = (
            key.field.column < values[position]
            if key.descending != backward
            else key.field.column > values[position]
        )
        alternatives.append(and_(*equal_prefix, beyond))
    return or_(*alternatives)


def encode_cursor(row: Any, keys: Sequence[SortKey]) -> str:
    """The opaque cursor of a row in this order."""
    return encode_cursor_values([getattr(row, key.field.attribute) for key in keys], keys)


def encode_cursor_values(values: Sequence[Any], keys: Sequence[SortKey]) -> str:
    """The opaque cursor of the row whose sort values (one per key) are `values`."""
    payload = json.dumps(
        [_fingerprint(keys), [_json_value(value) for value in values]], separators=(",", ":")
    )
    return base64.urlsafe_b64encode(payload.encode()).decode()


def decode_cursor(cursor: str, keys: Sequence[SortKey], argument: str) -> tuple[Any, ...]:
    """The sort values a cursor carries; refuses cursors that are malformed or of another order."""
    problem = f"{argument} is not a cursor of this connection and order; use a cursor it returned"
    try:
        fingerprint, raw_values = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError, binascii.Error, UnicodeError):
        raise BadUserInputError(problem) from None
    if fingerprint != _fingerprint(keys) or not isinstance(raw_values, list):
        raise BadUserInputError(problem)
    if len(raw_values) != len(keys):
        raise BadUserInputError(problem)
    try:
        return tuple(
            _python_value(raw, key.field.value_type)
            for raw, key in zip(raw_values, keys, strict=True)
        )
    except (ValueError, TypeError, KeyError):
        raise BadUserInputError(problem) from None


def _fingerprint(keys: Sequence[SortKey]) -> str:
    order = ",".join(f"{key.field.attribute}:{'d' if key.descending else 'a'}" for key in keys)
    return hashlib.blake2s(order.encode(), digest_size=6).hexdigest()


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, enum.Enum):
        return value.name
    return value


def _python_value(raw: Any, value_type: type) -> Any:
    if value_type is dt.datetime:
        if not isinstance(raw, str):
            raise TypeError(raw)
        value = dt.datetime.fromisoformat(raw)
        if value.tzinfo is None:
            raise ValueError(raw)
        return value
    if issubclass(value_type, enum.Enum):
        return value_type[raw]
    if value_type is int and (not isinstance(raw, int) or isinstance(raw, bool)):
        raise TypeError(raw)
    if value_type is str and not isinstance(raw, str):
        raise TypeError(raw)
    return raw


@dataclass(frozen=True, slots=True)
class Page:
    """One page of rows (each a tuple of the selected entities) and whether more lie around it."""

    rows: list[Any]
    has_next: bool
    has_previous: bool


def page_statement(
    statement: Select[Any], keys: Sequence[SortKey], request: PageRequest
) -> Select[Any]:
    """One page of a filtered statement: the rows beyond the cursor, in order, one extra to
    peek at whether more follow."""
    beyond = beyond_cursor(keys, request)
    return cut_page(
        statement, keys, backward=request.backward, beyond=beyond, limit=request.limit + 1
    )


def cut_page(
    statement: Select[Any],
    keys: Sequence[SortKey],
    *,
    backward: bool,
    beyond: ColumnElement[Any] | None,
    limit: int | ColumnElement[Any],
) -> Select[Any]:
    """`statement`'s rows `beyond` a cursor (if given), in the order, `limit` of them."""
    if beyond is not None:
        statement = statement.where(beyond)
    return statement.order_by(*order_clauses(keys, backward=backward)).limit(limit)


def ranked_by_parent(
    columns: Sequence[Any],
    parent_column: SqlColumn,
    condition: ColumnElement[Any],
    keys: Sequence[SortKey],
    *,
    backward: bool,
    beyond: ColumnElement[Any] | None,
) -> Subquery:
    """The rows under `condition` (which names the parents) `beyond` the cursor (if given),
    each ranked (`page_rank`) within its parent in the page's order; `first_ranks` keeps one
    page per parent."""
    ranked = select(
        *columns,
        func.row_number()
        .over(partition_by=parent_column, order_by=order_clauses(keys, backward=backward))
        .label("page_rank"),
    ).where(condition)
    if beyond is not None:
        ranked = ranked.where(beyond)
    return ranked.subquery()


def first_ranks(
    statement: Select[Any], ranked: Subquery, limit: int | ColumnElement[Any]
) -> Select[Any]:
    """`statement` over a `ranked_by_parent` subquery, kept to `limit` rows per parent."""
    return statement.where(ranked.c.page_rank <= limit).order_by(ranked.c.page_rank)


def beyond_cursor(keys: Sequence[SortKey], request: PageRequest) -> ColumnElement[bool] | None:
    """The rows after (or before) the request's cursor, if it has one."""
    if request.cursor_values is None:
        return None
    return after_cursor_condition(keys, request.cursor_values, backward=request.backward)


async def fetch_page(
    session: AsyncSession, statement: Select[Any], keys: Sequence[SortKey], request: PageRequest
) -> Page:
    """Run one statement for one page: the filtered rows beyond the cursor, one extra to peek."""
    rows = list((await session.execute(page_statement(statement, keys, request))).all())
    return page_of(rows, request)


async def fetch_pages_by_parent(
    session: AsyncSession,
    entity: type[Any],
    parent_attribute: str,
    parent_keys: Sequence[Any],
    condition: ColumnElement[bool],
    keys: Sequence[SortKey],
    request: PageRequest,
) -> dict[Any, Page]:
    """One page per parent in one statement: rank each parent's rows, keep the first N (+1)."""
    parent_column = getattr(entity, parent_attribute)
    inner = ranked_by_parent(
        [entity],
        parent_column,
        and_(parent_column.in_(parent_keys), condition),
        keys,
        backward=request.backward,
        beyond=beyond_cursor(keys, request),
    )
    statement = first_ranks(select(aliased(entity, inner)), inner, request.limit + 1)
    grouped: dict[Any, list[Any]] = {key: [] for key in parent_keys}
    for row in (await session.execute(statement)).all():
        grouped[getattr(row[0], parent_attribute)].append(row)
    return {key: page_of(rows, request) for key, rows in grouped.items()}


def page_of(rows: list[Any], request: PageRequest) -> Page:
    """The page in `rows`: at most `request.limit + 1` rows in the order fetched."""
    more = len(rows) > request.limit
    rows = rows[: request.limit]
    if request.backward:
        rows.reverse()
        return Page(rows, has_next=request.has_cursor, has_previous=more)
    return Page(rows, has_next=more, has_previous=request.has_cursor)
