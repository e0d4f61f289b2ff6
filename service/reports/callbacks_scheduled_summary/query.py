"""The summary's root field: the report's period, filters and header, and the grouping
asked for."""

from __future__ import annotations

import strawberry

from service.errors import BadUserInputError
from service.graph.context import Info
from service.reports.callbacks_scheduled_details.query import report_header
from service.reports.callbacks_scheduled_details.types import (
    CallbacksScheduledDetailsFilters,
    TimePeriodInput,
)
from service.reports.callbacks_scheduled_summary.groups import SummaryDimension
from service.reports.callbacks_scheduled_summary.types import CallbacksScheduledSummary


def callbacks_scheduled_summary(
    info: Info,
    *,
    time_period: TimePeriodInput | None = None,
    filters: CallbacksScheduledDetailsFilters | None = None,
    group_by: list[SummaryDimension],
) -> CallbacksScheduledSummary:
    """Resolve the summary's header; its groups and total load (together) when selected."""
    check_group_by(group_by)
    # The report's own header and condition: the same period, filters and checks.
    report = report_header(info.context.settings, time_period, filters)
    return CallbacksScheduledSummary(
        time_period=report.time_period,
        query_time=report.query_time,
        filters=report.filters,
        condition=report.condition,
        group_by=list(group_by),
    )


def check_group_by(group_by: list[SummaryDimension]) -> None:
    """BadUserInputError for a grouping the summary cannot take: none, or a repeated one."""
    if not group_by:
        raise BadUserInputError(
            "groupBy is empty: name at least one dimension, e.g. [CALLBACK_STATUS]"
        )
    repeated = sorted({d.name for d in group_by if group_by.count(d) > 1})
    if repeated:
        raise BadUserInputError(f"groupBy names {', '.join(repeated)} more than once")


@strawberry.type
class SummaryQuery:
    """The summary's root field, merged into the schema's Query."""

    callbacks_scheduled_summary: CallbacksScheduledSummary = strawberry.field(
        resolver=callbacks_scheduled_summary,
        description="Counts of the Callbacks Scheduled Details report's callbacks (the same "
        "period, filters and visible rows) grouped by the dimensions in groupBy; creation "
        "days and hours in the period's time zone.",
    )
