"""The report's root field: resolve the period and filters into the report's header and the
condition its rows and total share."""

from __future__ import annotations

import datetime as dt

import strawberry
from sqlalchemy import and_

from service.clock import utc_now
from service.errors import BadUserInputError
from service.graph.context import Info
from service.reports.callbacks_scheduled_details.conditions import (
    filter_conditions,
    period_condition,
)
from service.reports.callbacks_scheduled_details.csv_parameters import csv_parameters
from service.reports.callbacks_scheduled_details.types import (
    CallbacksScheduledDetailsFilters,
    CallbacksScheduledDetailsReport,
    TimePeriod,
    TimePeriodInput,
)
from service.reports.time_periods import TimePeriodError, resolve_time_period
from service.settings import Settings


def callbacks_scheduled_details(
    info: Info,
    time_period: TimePeriodInput | None = None,
    filters: CallbacksScheduledDetailsFilters | None = None,
) -> CallbacksScheduledDetailsReport:
    """Resolve the report's header; its rows and total load only when selected."""
    return report_header(info.context.settings, time_period, filters)


def report_header(
    settings: Settings,
    time_period: TimePeriodInput | None,
    filters: CallbacksScheduledDetailsFilters | None,
) -> CallbacksScheduledDetailsReport:
    """The report's header, and the condition its rows and total share, for these arguments;
    raises BadUserInputError for a period or filter the report cannot take."""
    query_time = utc_now()
    period_input = time_period or TimePeriodInput()
    max_span = dt.timedelta(days=settings.max_report_days)
    try:
        period = resolve_time_period(
            preset=period_input.preset,
            last_days=period_input.last_days,
            last_hours=period_input.last_hours,
            start=period_input.from_,
            end=period_input.to,
            time_zone=period_input.time_zone,
            default_time_zone=settings.report_time_zone,
            now=query_time,
            max_span=max_span,
        )
    except TimePeriodError as error:
        raise BadUserInputError(str(error)) from None
    filters = filters or CallbacksScheduledDetailsFilters()
    applied, filter_condition = filter_conditions(filters)
    return CallbacksScheduledDetailsReport(
        time_period=TimePeriod(
            from_=period.start, to=period.end, time_zone=period.time_zone, label=period.label
        ),
        query_time=query_time,
        filters=applied,
        condition=and_(period_condition(period), filter_condition),
        csv_parameters=csv_parameters(period, period_input, filters, max_span=max_span),
    )


@strawberry.type
class ReportQuery:
    """The report's root fields, merged into the schema's Query."""

    callbacks_scheduled_details: CallbacksScheduledDetailsReport = strawberry.field(
        resolver=callbacks_scheduled_details,
        description="The Callbacks Scheduled Details report for a period (default: the last 7 "
        "days), with optional filters.",
    )
