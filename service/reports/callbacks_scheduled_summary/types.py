"""The summary's GraphQL types: its header, as the report's, and its groups."""

from __future__ import annotations

import asyncio
import datetime as dt

import strawberry
from sqlalchemy import ColumnElement

from service.db.models.callback import CallbackStatus, CallbackType, SystemCompletionCode
from service.graph.context import Info
from service.reports.callbacks_scheduled_details.types import AppliedFilter, TimePeriod
from service.reports.callbacks_scheduled_summary.groups import (
    SummaryCounts,
    SummaryDimension,
    count_summary_groups,
)

strawberry.enum(
    SummaryDimension,
    description="What a summary groups callbacks by; creation days and hours are in the "
    "period's time zone.",
)


@strawberry.type(
    description="A combination of the grouped dimensions' values that occurs, and how many "
    "callbacks have it; a dimension not grouped by is null."
)
class SummaryGroup:
    count: int
    callback_status: CallbackStatus | None = None
    callback_type: CallbackType | None = None
    campaign_name: str | None = None
    creator_agent_id: str | None = None
    serviced_by_agent_id: str | None = None
    system_completion_code: SystemCompletionCode | None = None
    creation_day: str | None = strawberry.field(
        default=None,
        description="YYYY-MM-DD in the period's time zone: local midnight to midnight (23 or "
        "25 hours on the days the clocks change).",
    )
    creation_hour: dt.datetime | None = strawberry.field(
        default=None,
        description="Start of the local hour, with the zone's offset then (an hour that "
        "happens twice when the clocks go back is two groups, one per offset).",
    )


@strawberry.type(
    description="Counts of the Callbacks Scheduled Details report's callbacks by the "
    "dimensions asked for, with the report's header."
)
class CallbacksScheduledSummary:
    time_period: TimePeriod
    query_time: dt.datetime = strawberry.field(description="When the summary was run.")
    filters: list[AppliedFilter]
    condition: strawberry.Private[ColumnElement[bool]]
    group_by: strawberry.Private[list[SummaryDimension]]
    # The one statement's answer, shared by totalRecords and groups (resolved concurrently).
    counted: strawberry.Private[asyncio.Future[SummaryCounts] | None] = None

    @strawberry.field(description="Callbacks the report holds: the sum of the groups' counts.")
    async def total_records(self, info: Info) -> int:
        return (await self._counts(info)).total

    @strawberry.field(
        description="One group per combination of values that occurs, ordered by the values "
        "in groupBy's order: enum values as declared, names and IDs by code point, days and "
        "hours in time, null last."
    )
    async def groups(self, info: Info) -> list[SummaryGroup]:
        return [
            SummaryGroup(
                count=group.count,
                callback_status=group.callback_status,
                callback_type=group.callback_type,
                campaign_name=group.campaign_name,
                creator_agent_id=group.creator_agent_id,
                serviced_by_agent_id=group.serviced_by_agent_id,
                system_completion_code=group.system_completion_code,
                creation_day=group.creation_day,
                creation_hour=group.creation_hour,
            )
            for group in (await self._counts(info)).groups
        ]

    def _counts(self, info: Info) -> asyncio.Future[SummaryCounts]:
        if self.counted is None:
            self.counted = asyncio.ensure_future(
                count_summary_groups(
                    info.context.scoped_session_maker,
                    condition=self.condition,
                    dimensions=self.group_by,
                    time_zone=self.time_period.time_zone,
                )
            )
        return self.counted
