"""The report's time period: check a `TimePeriodInput` and resolve it to UTC bounds and a label.

Pure: no database, no GraphQL. The resolver passes the input's fields, the service's report time
zone and the current time, and filters on `start <= creation_time < end`. Day, week and month
bounds are local wall-clock midnights in the period's time zone, converted to UTC, so a day is 23
or 25 hours long when the clocks change that day.
"""

from __future__ import annotations

import datetime as dt
import enum
import zoneinfo
from dataclasses import dataclass
from typing import assert_never

DEFAULT_LAST_DAYS = 7  # POM's default period when the request names none
MAX_LAST_COUNT = 99  # the largest lastDays / lastHours POM's report offers


class TimePeriodPreset(enum.Enum):
    """A named period that follows the calendar in the period's time zone."""

    ALL = "ALL"
    TODAY = "TODAY"
    YESTERDAY = "YESTERDAY"
    THIS_WEEK = "THIS_WEEK"
    LAST_WEEK = "LAST_WEEK"
    THIS_MONTH = "THIS_MONTH"
    LAST_MONTH = "LAST_MONTH"


_PRESET_LABELS = {
    TimePeriodPreset.ALL: "All",
    TimePeriodPreset.TODAY: "Today",
    TimePeriodPreset.YESTERDAY: "Yesterday",
    TimePeriodPreset.THIS_WEEK: "This Week",
    TimePeriodPreset.LAST_WEEK: "Last Week",
    TimePeriodPreset.THIS_MONTH: "This Month",
    TimePeriodPreset.LAST_MONTH: "Last Month",
}


class TimePeriodError(ValueError):
    """Bad time period input; the message says what to fix (it is shown to API clients)."""


@dataclass(frozen=True, slots=True)
class ResolvedTimePeriod:
    """A period as the report applies it: `start <= creation_time < end`."""

    start: dt.datetime | None  # inclusive, aware UTC; None only for ALL
    end: dt.datetime | None  # exclusive, aware UTC; None only for ALL
    time_zone: str  # the IANA zone the bounds and the label were computed in
    label: str  # e.g. "Last 7 Days", "Today", "Between 2026-11-01 00:00 and ... (Europe/Berlin)"


def resolve_time_period(
    *,
    preset: TimePeriodPreset | None = None,
    last_days: int | None = None,
    last_hours: int | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    time_zone: str | None = None,
    default_time_zone: str,
    now: dt.datetime,
    max_span: dt.timedelta | None = None,
) -> ResolvedTimePeriod:
    """Check a report time period and resolve it to UTC bounds and a label."""
    if not _is_aware(now):
        # A naive `now` would silently be read as the server's local time.
        raise ValueError("now must be timezone-aware")
    _check_one_choice(
        preset=preset, last_days=last_days, last_hours=last_hours, start=start, end=end
    )
    if time_zone is None:
        # Settings has already checked the service's own zone; a bad one is not the client's fault.
        zone_name, zone = default_time_zone, zoneinfo.ZoneInfo(default_time_zone)
    else:
        zone_name, zone = time_zone, _load_zone(time_zone)

    if start is not None and end is not None:
        return _between(start, end, zone_name, zone, max_span)
    if last_hours is not None:
        hours = _check_count("lastHours", last_hours)
        # Elapsed hours, not wall-clock hours: "last 5 hours" is 5 hours even across a DST change.
        until = now.astimezone(dt.UTC)
        since = until - dt.timedelta(hours=hours)
        return ResolvedTimePeriod(since, until, zone_name, f"Last {_count(hours, 'Hour')}")

    today = now.astimezone(zone).date()
    if preset is None:
        days = DEFAULT_LAST_DAYS if last_days is None else _check_count("lastDays", last_days)
        first_day, day_after = today - dt.timedelta(days=days - 1), today + dt.timedelta(days=1)
        label = f"Last {_count(days, 'Day')}"
    else:
        calendar_days = _preset_days(preset, today)
        if calendar_days is None:
            return ResolvedTimePeriod(None, None, zone_name, _PRESET_LABELS[preset])
        first_day, day_after = calendar_days
        label = _PRESET_LABELS[preset]
    return ResolvedTimePeriod(
        _start_of_day(first_day, zone), _start_of_day(day_after, zone), zone_name, label
    )


def _check_one_choice(
    *,
    preset: TimePeriodPreset | None,
    last_days: int | None,
    last_hours: int | None,
    start: dt.datetime | None,
    end: dt.datetime | None,
) -> None:
    """Reject inputs that set more than one kind of period, or only half of from + to."""
    fields = {
        "preset": preset,
        "lastDays": last_days,
        "lastHours": last_hours,
        "from": start,
        "to": end,
    }
    given = [f"timePeriod.{name}" for name, value in fields.items() if value is not None]
    between = start is not None or end is not None
    # from + to is one choice: count it once.
    choices = sum(value is not None for value in (preset, last_days, last_hours)) + between
    if choices > 1:
        raise TimePeriodError(
            "timePeriod must set at most one of preset, lastDays, lastHours or from + to,"
            f" got {', '.join(given)}"
        )
    if between and (start is None or end is None):
        raise TimePeriodError(
            f"timePeriod.from and timePeriod.to must be given together, got only {given[0]}"
        )


def _load_zone(name: str) -> zoneinfo.ZoneInfo:
    """Load the client's time zone, or say that it is not one."""
    try:
        return zoneinfo.ZoneInfo(name)
    # Not found, a path-like or empty key, or a directory such as "America".
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise TimePeriodError(
            f"timePeriod.timeZone must be an IANA time zone such as Europe/Berlin, got {name!r}"
        ) from None


def _check_count(field: str, value: int) -> int:
    """Check a lastDays / lastHours value against POM's range."""
    if not 1 <= value <= MAX_LAST_COUNT:
        raise TimePeriodError(
            f"timePeriod.{field} must be between 1 and {MAX_LAST_COUNT}, got {value}"
        )
    return value


def _between(
    start: dt.datetime,
    end: dt.datetime,
    zone_name: str,
    zone: zoneinfo.ZoneInfo,
    max_span: dt.timedelta | None,
) -> ResolvedTimePeriod:
    """Resolve an explicit from + to period."""
    since, since_local = _in_utc_and_zone("from", start, zone)
    until, until_local = _in_utc_and_zone("to", end, zone)
    if since >= until:
        raise TimePeriodError(
            "timePeriod.from must be before timePeriod.to,"
            f" got from {since.isoformat()} and to {until.isoformat()}"
        )
    if max_span is not None and until - since > max_span:
        raise TimePeriodError(
            f"timePeriod.to must be at most {_describe_span(max_span)} after timePeriod.from,"
            f" got {_describe_span(until - since)}"
        )
    label = f"Between {_wall_clock(since_local)} and {_wall_clock(until_local)} ({zone_name})"
    return ResolvedTimePeriod(since, until, zone_name, label)


def _in_utc_and_zone(
    field: str, value: dt.datetime, zone: zoneinfo.ZoneInfo
) -> tuple[dt.datetime, dt.datetime]:
    """Read a from / to value as UTC and as wall-clock time in the zone. A value without an
    offset is wall-clock time in the zone (a date alone is its midnight there): a user who names
    a zone means its clock. On the day clocks change, a time that occurs twice is its first
    occurrence, and one that never occurs (in the gap when they move forward) is refused."""
    aware = value if _is_aware(value) else value.replace(tzinfo=zone)
    try:
        instant = aware.astimezone(dt.UTC)
        if not _is_aware(value) and instant.astimezone(zone).replace(tzinfo=None) != value:
            raise TimePeriodError(
                f"timePeriod.{field} {value.isoformat()} never happens in {zone.key}: the clocks "
                "moved forward over it; give a time outside the gap, or one with its offset"
            )
        return instant, aware.astimezone(zone)
    except OverflowError:
        # e.g. 0001-01-01T00:00+05:00, which is before year 1 in UTC. A UTC offset is under a
        # day, so anything from 0001-01-02 to 9999-12-30 converts.
        raise TimePeriodError(
            f"timePeriod.{field} is too close to year 1 or 9999 to convert,"
            f" got {value.isoformat()}; use a time between 0001-01-02 and 9999-12-30"
        ) from None


def _preset_days(preset: TimePeriodPreset, today: dt.date) -> tuple[dt.date, dt.date] | None:
    """Return a preset's first local day and the day after its last; None for ALL."""
    one_day, one_week = dt.timedelta(days=1), dt.timedelta(weeks=1)
    monday = today - dt.timedelta(days=today.weekday())  # ISO weeks start on Monday
    first_of_month = today.replace(day=1)
    match preset:
        case TimePeriodPreset.ALL:
            return None
        case TimePeriodPreset.TODAY:
            return today, today + one_day
        case TimePeriodPreset.YESTERDAY:
            return today - one_day, today
        case TimePeriodPreset.THIS_WEEK:
            return monday, monday + one_week
        case TimePeriodPreset.LAST_WEEK:
            return monday - one_week, monday
        case TimePeriodPreset.THIS_MONTH:
            # The 1st plus 31 days always lands in the next month, whatever this month's length.
            return first_of_month, (first_of_month + dt.timedelta(days=31)).replace(day=1)
        case TimePeriodPreset.LAST_MONTH:
            return (first_of_month - one_day).replace(day=1), first_of_month
        case _:
            assert_never(preset)


def _start_of_day(day: dt.date, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    """Return the first instant of a local calendar day, in UTC."""
    # Midnight is built as a local wall time and only then converted, so its UTC offset is the
    # one in force that night, never one carried over from another day by timedelta arithmetic.
    #
    # Where a DST jump skips midnight itself (America/Santiago, America/Havana, Asia/Beirut move
    # 00:00 -> 01:00), fold=0 reads the missing 00:00 with the offset in force before the jump,
    # which lands exactly on the jump: the day's first instant (local 01:00). A scan of tzdata for
    # 1970-2039 found no gap that contains midnight without starting at it, so this is exact there.
    # Where the clocks pass midnight twice (America/Havana falls back 01:00 -> 00:00), fold=0 is
    # the first of the two, again the day's first instant.
    midnight = dt.datetime.combine(day, dt.time(0), tzinfo=zone)  # fold=0
    return midnight.astimezone(dt.UTC)


def _is_aware(value: dt.datetime) -> bool:
    """Tell whether a datetime pins an instant (has a UTC offset)."""
    return value.tzinfo is not None and value.utcoffset() is not None


def _count(count: int, unit: str) -> str:
    """Render a count with its unit: "1 Day", "7 Days"."""
    return f"{count} {unit}" + ("" if count == 1 else "s")


def _wall_clock(value: dt.datetime) -> str:
    """Render a local time to the minute, adding seconds only when the value has them."""
    if value.microsecond:
        timespec = "microseconds"
    elif value.second:
        timespec = "seconds"
    else:
        timespec = "minutes"
    return value.replace(tzinfo=None).isoformat(sep=" ", timespec=timespec)


def _describe_span(span: dt.timedelta) -> str:
    """Render a duration for a message: "31 days", "12 hours", else timedelta's own form."""
    for unit, length in (("day", dt.timedelta(days=1)), ("hour", dt.timedelta(hours=1))):
        if span % length == dt.timedelta(0):
            return _count(span // length, unit)
    return str(span)
