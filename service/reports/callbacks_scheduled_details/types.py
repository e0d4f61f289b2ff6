"""The report's GraphQL inputs and types: the period and filters asked for, the header and
the rows."""

from __future__ import annotations

import datetime as dt

import strawberry
from sqlalchemy import ColumnElement

from service.db.models.callback import Callback, CallbackStatus, CallbackType
from service.graph.connections import Connection, count_rows
from service.graph.context import Info
from service.graph.declarations import CallbackOrder
from service.graph.nodes import CallbackNode
from service.graph.query import callback_connection
from service.reports.callbacks_scheduled_details.csv_links import QueryParameters, signed_csv_path
from service.reports.time_periods import TimePeriodPreset

strawberry.enum(TimePeriodPreset, description="Named report periods, in the period's time zone.")


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
        name="from",
        default=None,
        description="Start, inclusive (Between). Without a UTC offset it is wall-clock time in "
        "the period's time zone, and a date alone is that day's midnight there.",
    )
    to: dt.datetime | None = strawberry.field(
        default=None,
        description="End, exclusive; without a UTC offset, wall-clock time in the period's "
        "time zone, as for from.",
    )
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
    # The period and filters as the CSV download takes them (see csv_parameters.py).
    csv_parameters: strawberry.Private[QueryParameters]

    @strawberry.field(
        description="This report as CSV: the path of `GET /reports/callbacks-scheduled-details"
        ".csv` with the report's period (its resolved bounds and time zone) and filters as "
        "query parameters, and a `token` signed for the caller's API key and exactly those "
        "parameters. For 5 minutes after `queryTime` it downloads without an Authorization "
        "header (a plain browser link); expired, altered, or once its key is revoked, it gets "
        "HTTP 401. An agent key's link holds that agent's rows only. Relative to the service's "
        "address."
    )
    def csv_url(self, info: Info) -> str:
        return signed_csv_path(
            self.csv_parameters,
            principal=info.context.caller.require(),
            settings=info.context.settings,
            now=self.query_time,
        )

    @strawberry.field(description="Number of rows the report holds, over all pages.")
    async def total_records(self, info: Info) -> int:
        return await count_rows(info.context.scoped_session_maker, Callback, self.condition)

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
