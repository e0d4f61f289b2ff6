"""The Callbacks Scheduled Details report: header (period, query time, filters, total) and rows."""

from __future__ import annotations

import datetime as dt
from typing import Any

import strawberry
from sqlalchemy import ColumnElement, and_, select, true

from service.callbacks.models import CallbackStatus, CallbackType
from service.context import Info
from service.errors import BadUserInputError
from service.graph import declarations
from service.graph.connections import Connection, count_rows, root_connection
from service.graph.nodes import CallbackNode
from service.models import Callback, Campaign
from service.reports.time_periods import (
    ResolvedTimePeriod,
    TimePeriodError,
    TimePeriodPreset,
    resolve_time_period,
)

strawberry.enum(TimePeriodPreset, description="Named report periods, in the period's time zone.")

CallbackOrder = declarations.CALLBACK.order_input


@strawberry.input(
    description="The report's period: at most one of preset, lastDays, lastHours or from + to. "
    "None given means the last 7 days. It filters on Creation Time: from <= creationTime < to."
)
class TimePeriodInput:
    preset: TimePeriodPreset | None = None
    last_days: int | None = strawberry.field(
        default=None, description="1..99 whole days counted from midnight, today included."
    )
    last_hours: int | None = strawberry.field(default=None, description="1..99 hours up to now.")
    from_: dt.datetime | None = strawberry.field(
        name="from", default=None, description="Start, inclusive (Between)."
    )
    to: dt.datetime | None = strawberry.field(default=None, description="End, exclusive.")
    time_zone: str | None = strawberry.field(
        default=None,
        description="IANA zone for day, week and month boundaries; default: the service's.",
    )


@strawberry.input(description="The report's optional filters; all given ones must hold.")
class CallbacksScheduledDetailsFilters:
    agent_id: str | None = strawberry.field(
        default=None, description="Creator Agent ID: the agent who scheduled the callback."
    )
    campaign_names: list[str] | None = None
    job_ids: list[int] | None = None
    callback_types: list[CallbackType] | None = None
    callback_statuses: list[CallbackStatus] | None = None
    contact_id: str | None = None
    serviced_by_agent_id: str | None = None


@strawberry.type(description="The period the report covers, resolved to instants.")
class TimePeriod:
    from_: dt.datetime | None = strawberry.field(
        name="from", description="Start, inclusive; null for ALL."
    )
    to: dt.datetime | None = strawberry.field(description="End, exclusive; null for ALL.")
    time_zone: str = strawberry.field(description="Zone the bounds were computed in.")
    label: str = strawberry.field(description='As the report shows it, e.g. "Last 7 Days".')


@strawberry.type(description="A filter the report applied, with the report's label.")
class AppliedFilter:
    name: str = strawberry.field(description='The report\'s label, e.g. "Agent ID".')
    value: str


@strawberry.type(description="The Callbacks Scheduled Details report: its header and its rows.")
class CallbacksScheduledDetailsReport:
    time_period: TimePeriod
    query_time: dt.datetime = strawberry.field(description="When the report was run.")
    filters: list[AppliedFilter]
    condition: strawberry.Private[ColumnElement[bool]]

    @strawberry.field(description="Number of rows the report holds, over all pages.")
    async def total_records(self, info: Info) -> int:
        return await count_rows(info.context.session_maker, Callback, self.condition)

    @strawberry.field(
        description="One row per callback created in the period; by creation time, then "
        "callback ID, unless orderBy says otherwise."
    )
    async def rows(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        order_by: list[CallbackOrder] | None = None,  # type: ignore[valid-type]
    ) -> Connection[CallbackNode]:
        return await callback_connection(
            info,
            self.condition,
            order_by=order_by,
            arguments={"first": first, "after": after, "last": last, "before": before},
        )


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
        info.context.session_maker,
        declarations.CALLBACK,
        select(Callback, Campaign).join(Campaign, Callback.campaign_id == Campaign.id),
        condition,
        order_by=order_by,
        request_arguments=arguments,
        max_page_size=info.context.settings.max_page_size,
        to_node=to_node,
    )


def callbacks_scheduled_details(
    info: Info,
    time_period: TimePeriodInput | None = None,
    filters: CallbacksScheduledDetailsFilters | None = None,
) -> CallbacksScheduledDetailsReport:
    """Resolve the report's header; its rows and total load only when selected."""
    settings = info.context.settings
    query_time = dt.datetime.now(dt.UTC)
    period_input = time_period or TimePeriodInput()
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
            max_span=dt.timedelta(days=settings.max_report_days),
        )
    except TimePeriodError as error:
        raise BadUserInputError(str(error)) from None
    applied, filter_condition = _filters(filters or CallbacksScheduledDetailsFilters())
    return CallbacksScheduledDetailsReport(
        time_period=TimePeriod(
            from_=period.start, to=period.end, time_zone=period.time_zone, label=period.label
        ),
        query_time=query_time,
        filters=applied,
        condition=and_(_period_condition(period), filter_condition),
    )


def _period_condition(period: ResolvedTimePeriod) -> ColumnElement[bool]:
    conditions = []
    if period.start is not None:
        conditions.append(Callback.created_at >= period.start)
    if period.end is not None:
        conditions.append(Callback.created_at < period.end)
    return and_(true(), *conditions)


def _filters(
    filters: CallbacksScheduledDetailsFilters,
) -> tuple[list[AppliedFilter], ColumnElement[bool]]:
    """The filters as the report's header lists them, and as one SQL condition."""
    applied: list[AppliedFilter] = []
    conditions: list[ColumnElement[bool]] = []

    def non_empty(argument: str, values: list[Any] | None) -> list[Any] | None:
        if values is not None and not values:
            raise BadUserInputError(
                f"filters.{argument} is empty; name at least one, or leave it out to include all"
            )
        return values

    if filters.agent_id is not None:
        applied.append(AppliedFilter(name="Agent ID", value=filters.agent_id))
        conditions.append(Callback.creator_agent_id == filters.agent_id)
    if names := non_empty("campaignNames", filters.campaign_names):
        applied.append(AppliedFilter(name="Campaign Name", value=", ".join(names)))
        conditions.append(
            Callback.campaign_id.in_(select(Campaign.id).where(Campaign.name.in_(names)))
        )
    if job_ids := non_empty("jobIds", filters.job_ids):
        applied.append(AppliedFilter(name="Job ID", value=", ".join(map(str, job_ids))))
        conditions.append(Callback.job_id.in_(job_ids))
    if types := non_empty("callbackTypes", filters.callback_types):
        applied.append(
            AppliedFilter(name="Callback Type", value=", ".join(_report_word(t) for t in types))
        )
        conditions.append(Callback.callback_type.in_(types))
    if statuses := non_empty("callbackStatuses", filters.callback_statuses):
        applied.append(
            AppliedFilter(
                name="Callback Status", value=", ".join(_report_word(s) for s in statuses)
            )
        )
        conditions.append(Callback.status.in_(statuses))
    if filters.contact_id is not None:
        applied.append(AppliedFilter(name="Contact ID", value=filters.contact_id))
        conditions.append(Callback.contact_id == filters.contact_id)
    if filters.serviced_by_agent_id is not None:
        applied.append(
            AppliedFilter(name="Serviced By Agent ID", value=filters.serviced_by_agent_id)
        )
        conditions.append(Callback.serviced_by_agent_id == filters.serviced_by_agent_id)
    return applied, and_(true(), *conditions)


def _report_word(value: CallbackType | CallbackStatus) -> str:
    """How the report writes an enum value: "Campaign Terminated", but "Strict agent"."""
    words = str(value.name).replace("_", " ")
    return words.capitalize() if value is CallbackType.STRICT_AGENT else words.title()
