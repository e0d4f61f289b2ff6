"""The summary's one statement: callbacks counted by the dimensions asked for, under the
report's condition, and the counts gathered into groups in the period's time zone."""

from __future__ import annotations

import datetime as dt
import enum
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import InstrumentedAttribute

from service.db.models.callback import (
    Callback,
    CallbackStatus,
    CallbackType,
    SystemCompletionCode,
)
from service.db.models.campaign import Campaign
from service.reports.callbacks_scheduled_summary.time_buckets import (
    LocalQuarterHours,
    quarter_hour_of,
)


class SummaryDimension(enum.Enum):
    """What the summary's callbacks can be grouped by (SPEC 7)."""

    CALLBACK_STATUS = "CALLBACK_STATUS"
    CALLBACK_TYPE = "CALLBACK_TYPE"
    CAMPAIGN = "CAMPAIGN"
    CREATOR_AGENT = "CREATOR_AGENT"
    SERVICED_BY_AGENT = "SERVICED_BY_AGENT"
    SYSTEM_COMPLETION_CODE = "SYSTEM_COMPLETION_CODE"
    CREATION_DAY = "CREATION_DAY"
    CREATION_HOUR = "CREATION_HOUR"


TIME_DIMENSIONS = frozenset({SummaryDimension.CREATION_DAY, SummaryDimension.CREATION_HOUR})

# The callback column each other dimension groups by (the campaign's name through a join).
# ORM attributes, not table columns: the row-scoped sessions add the caller's scope to ORM
# statements (service.auth.row_scope).
_COLUMNS: dict[SummaryDimension, InstrumentedAttribute[Any]] = {
    SummaryDimension.CALLBACK_STATUS: Callback.status,
    SummaryDimension.CALLBACK_TYPE: Callback.callback_type,
    SummaryDimension.CAMPAIGN: Campaign.name,
    SummaryDimension.CREATOR_AGENT: Callback.creator_agent_id,
    SummaryDimension.SERVICED_BY_AGENT: Callback.serviced_by_agent_id,
    SummaryDimension.SYSTEM_COMPLETION_CODE: Callback.system_completion_code,
}


@dataclass(slots=True)
class GroupCount:
    """One group: its value of each dimension asked for (None for the others) and its count."""

    count: int = 0
    callback_status: CallbackStatus | None = None
    callback_type: CallbackType | None = None
    campaign_name: str | None = None
    creator_agent_id: str | None = None
    serviced_by_agent_id: str | None = None
    system_completion_code: SystemCompletionCode | None = None
    creation_day: str | None = None
    creation_hour: dt.datetime | None = None  # in the period's zone, with its offset


@dataclass(slots=True)
class SummaryCounts:
    """The groups in the dimensions' order, and their total."""

    groups: list[GroupCount] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Callbacks counted: every one falls in exactly one group."""
        return sum(group.count for group in self.groups)


# The GroupCount attribute each dimension sets.
_ATTRIBUTES = {
    SummaryDimension.CALLBACK_STATUS: "callback_status",
    SummaryDimension.CALLBACK_TYPE: "callback_type",
    SummaryDimension.CAMPAIGN: "campaign_name",
    SummaryDimension.CREATOR_AGENT: "creator_agent_id",
    SummaryDimension.SERVICED_BY_AGENT: "serviced_by_agent_id",
    SummaryDimension.SYSTEM_COMPLETION_CODE: "system_completion_code",
    SummaryDimension.CREATION_DAY: "creation_day",
    SummaryDimension.CREATION_HOUR: "creation_hour",
}


def summary_statement(
    condition: ColumnElement[bool], dimensions: Sequence[SummaryDimension]
) -> Select[Any]:
    """SELECT the count of callbacks under `condition` per combination of the dimensions'
    values; creation times by UTC quarter hour (see time_buckets.py)."""
    columns: list[ColumnElement[Any] | InstrumentedAttribute[Any]] = [
        _COLUMNS[d] for d in dimensions if d not in TIME_DIMENSIONS
    ]
    if TIME_DIMENSIONS.intersection(dimensions):
        columns.append(quarter_hour_of(Callback.created_at))
    statement = select(*columns, func.count()).select_from(Callback)
    if SummaryDimension.CAMPAIGN in dimensions:
        statement = statement.join(Campaign, Campaign.id == Callback.campaign_id)
    return statement.where(condition).group_by(*columns)


async def count_summary_groups(
    session_maker: async_sessionmaker[AsyncSession],
    *,
    condition: ColumnElement[bool],
    dimensions: Sequence[SummaryDimension],
    time_zone: str,
) -> SummaryCounts:
    """The callbacks under `condition` counted by `dimensions`, creation days and hours in
    `time_zone`: one statement through `session_maker` (whose sessions add the caller's row
    scope), its quarter hours then gathered into local days and hours."""
    async with session_maker() as session:
        rows = (await session.execute(summary_statement(condition, dimensions))).all()
    return gather_summary_groups(rows, dimensions, time_zone)


def gather_summary_groups(
    rows: Sequence[Sequence[Any]], dimensions: Sequence[SummaryDimension], time_zone: str
) -> SummaryCounts:
    """The groups of `summary_statement`'s rows (the plain dimensions' values in their order,
    then the quarter hour if a time dimension is asked for, then the count), each quarter hour
    placed in its local day and hour in `time_zone`, in the groups' order."""
    places = LocalQuarterHours(zoneinfo.ZoneInfo(time_zone))
    plain = [d for d in dimensions if d not in TIME_DIMENSIONS]
    timed = bool(TIME_DIMENSIONS.intersection(dimensions))
    # Where each dimension's value is in a row made of the plain values, then the local day
    # and hour: keys are built by indexing, not through a dict per row.
    positions = {d: n for n, d in enumerate(plain)}
    positions[SummaryDimension.CREATION_DAY] = len(plain)
    positions[SummaryDimension.CREATION_HOUR] = len(plain) + 1
    key_positions = [positions[d] for d in dimensions]
    attributes = [(_ATTRIBUTES[d], positions[d]) for d in dimensions]
    merged: dict[tuple[Any, ...], GroupCount] = {}
    for row in rows:
        if timed:
            placed = places.place(row[len(plain)])
            values = (*row[: len(plain)], placed.day, placed.hour)
        else:
            values = tuple(row[: len(plain)])
        key = tuple(values[n] for n in key_positions)
        group = merged.get(key)
        if group is None:
            group = merged[key] = GroupCount()
            for attribute, n in attributes:
                setattr(group, attribute, values[n])
            if group.creation_hour is not None:
                group.creation_hour = places.local(group.creation_hour)
        group.count += row[-1]  # the count, last (`row.count` is the tuple method)
    return SummaryCounts(groups=[merged[key] for key in sorted(merged, key=_group_order)])


def _group_order(key: tuple[Any, ...]) -> tuple[tuple[bool, Any], ...]:
    """Groups ordered by their values, dimension by dimension as asked: enum values as the
    schema declares them, names and IDs by code point, days and hours in time, none last."""
    return tuple(_value_order(value) for value in key)


def _value_order(value: Any) -> tuple[bool, Any]:
    # None sorts after every value, and is never compared with one.
    if value is None:
        return True, 0
    if isinstance(value, enum.Enum):
        return False, _ENUM_POSITIONS[value]
    return False, value


_ENUM_POSITIONS: dict[enum.Enum, int] = {
    value: position
    for values in (CallbackStatus, CallbackType, SystemCompletionCode)
    for position, value in enumerate(values)
}
