"""The CSV download's query parameters (SPEC 6), both ways: read into the report's period and
filter inputs, and written from a report's own period and filters (its `csvUrl`).

The parameters are the GraphQL inputs flattened: the period as `preset`, `lastDays`,
`lastHours`, or `from` and `to`, each with an optional `timeZone`; the filters under their
singular names, the list ones repeatable. Only the form is checked here (known names, each
single one once, whole numbers, enum names, ISO 8601 times); the period's and filters' own rules
are the report's (`report_header`), so both ways in give the same errors.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
import zoneinfo
from collections import defaultdict
from collections.abc import Callable
from typing import TypeVar

from service.db.models.callback import CallbackStatus, CallbackType
from service.reports.callbacks_scheduled_details.csv_links import QueryParameters
from service.reports.callbacks_scheduled_details.types import (
    CallbacksScheduledDetailsFilters,
    TimePeriodInput,
)
from service.reports.time_periods import ResolvedTimePeriod, TimePeriodPreset

ValueT = TypeVar("ValueT")
EnumT = TypeVar("EnumT", bound=enum.Enum)

# The link's own credential; not a report parameter (the download reads it apart).
TOKEN_PARAMETER = "token"
_SINGLE = (
    "preset",
    "lastDays",
    "lastHours",
    "from",
    "to",
    "timeZone",
    "agentId",
    "contactId",
    "servicedByAgentId",
)
_REPEATABLE = ("campaignName", "jobId", "callbackType", "callbackStatus")
_KNOWN = frozenset((*_SINGLE, *_REPEATABLE, TOKEN_PARAMETER))
# GraphQL's Int, which the same arguments have over /graphql.
INT_MIN, INT_MAX = -(2**31), 2**31 - 1


class CsvParameterError(ValueError):
    """A query parameter the CSV download cannot take; the message says which and why."""


def parse_csv_parameters(
    parameters: QueryParameters,
) -> tuple[TimePeriodInput, CallbacksScheduledDetailsFilters]:
    """The report's period and filters from a download's parameters (the token left out);
    raises CsvParameterError for a parameter of the wrong form."""
    values: dict[str, list[str]] = defaultdict(list)
    for name, value in parameters:
        if name not in _KNOWN or name == TOKEN_PARAMETER:
            raise CsvParameterError(
                f"unknown parameter {name!r}; the parameters are "
                f"{', '.join((*_SINGLE, *_REPEATABLE))}"
            )
        if not value:
            raise CsvParameterError(f"{name} is empty; give a value or leave it out")
        values[name].append(value)
    for name in _SINGLE:
        if len(values.get(name, ())) > 1:
            raise CsvParameterError(f"{name} is given {len(values[name])} times; give it once")

    def single(name: str, parse: Callable[[str, str], ValueT]) -> ValueT | None:
        return parse(name, values[name][0]) if name in values else None

    def repeated(name: str, parse: Callable[[str, str], ValueT]) -> list[ValueT] | None:
        return [parse(name, value) for value in values[name]] if name in values else None

    time_period = TimePeriodInput(
        preset=single("preset", _enum_parser(TimePeriodPreset)),
        last_days=single("lastDays", _whole_number),
        last_hours=single("lastHours", _whole_number),
        from_=single("from", _date_time),
        to=single("to", _date_time),
        time_zone=single("timeZone", _text),
    )
    filters = CallbacksScheduledDetailsFilters(
        agent_id=single("agentId", _text),
        campaign_names=repeated("campaignName", _text),
        job_ids=repeated("jobId", _whole_number),
        callback_types=repeated("callbackType", _enum_parser(CallbackType)),
        callback_statuses=repeated("callbackStatus", _enum_parser(CallbackStatus)),
        contact_id=single("contactId", _text),
        serviced_by_agent_id=single("servicedByAgentId", _text),
    )
    return time_period, filters


def csv_parameters(
    period: ResolvedTimePeriod,
    time_period: TimePeriodInput,
    filters: CallbacksScheduledDetailsFilters,
    *,
    max_span: dt.timedelta,
) -> QueryParameters:
    """The parameters that download the report of a period and filters.

    The period goes as its resolved bounds, in its time zone, so the link downloads the rows
    the report showed even when "today" or "the last 5 hours" has moved on since (and the
    times come in that zone). ALL goes as itself; a period whose bounds are longer than the
    longest "Between" the service takes (only when POMREPORT_MAX_REPORT_DAYS is under 99)
    goes as it was asked for.
    """
    parameters: list[tuple[str, str]] = []
    if period.start is None or period.end is None:
        parameters.append(("preset", TimePeriodPreset.ALL.name))
    elif period.end - period.start <= max_span:
        zone = zoneinfo.ZoneInfo(period.time_zone)  # the report resolved the period in it
        parameters.append(("from", period.start.astimezone(zone).isoformat()))
        parameters.append(("to", period.end.astimezone(zone).isoformat()))
    else:
        if time_period.preset is not None:
            parameters.append(("preset", time_period.preset.name))
        if time_period.last_days is not None:
            parameters.append(("lastDays", str(time_period.last_days)))
        if time_period.last_hours is not None:
            parameters.append(("lastHours", str(time_period.last_hours)))
    parameters.append(("timeZone", period.time_zone))
    if filters.agent_id is not None:
        parameters.append(("agentId", filters.agent_id))
    parameters += [("campaignName", name) for name in filters.campaign_names or ()]
    parameters += [("jobId", str(job_id)) for job_id in filters.job_ids or ()]
    parameters += [("callbackType", value.name) for value in filters.callback_types or ()]
    parameters += [("callbackStatus", value.name) for value in filters.callback_statuses or ()]
    if filters.contact_id is not None:
        parameters.append(("contactId", filters.contact_id))
    if filters.serviced_by_agent_id is not None:
        parameters.append(("servicedByAgentId", filters.serviced_by_agent_id))
    return tuple(parameters)


def _text(_name: str, value: str) -> str:
    return value


def _whole_number(name: str, value: str) -> int:
    # As GraphQL's Int: ASCII digits, 32 bits (a job ID column holds no more).
    if re.fullmatch(r"-?[0-9]{1,10}", value) is None or not INT_MIN <= int(value) <= INT_MAX:
        raise CsvParameterError(f"{name} must be a whole number, got {value!r}")
    return int(value)


def _date_time(name: str, value: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        hint = (
            " (a '+' in a URL means a space: send the offset's '+' as %2B)" if " " in value else ""
        )
        raise CsvParameterError(
            f"{name} must be an ISO 8601 date or time such as 2026-11-01 or "
            f"2026-11-01T09:00:00+01:00, got {value!r}{hint}"
        ) from None


def _enum_parser(enum_type: type[EnumT]) -> Callable[[str, str], EnumT]:
    def parse(name: str, value: str) -> EnumT:
        try:
            return enum_type[value]
        except KeyError:
            names = ", ".join(member.name for member in enum_type)
            raise CsvParameterError(f"{name} must be one of {names}, got {value!r}") from None

    return parse
