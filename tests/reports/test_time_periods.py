from __future__ import annotations

import datetime as dt
from typing import TypedDict
from zoneinfo import ZoneInfo

import pytest

from service.reports.time_periods import (
    ResolvedTimePeriod,
    TimePeriodError,
    TimePeriodPreset,
    resolve_time_period,
)

ALL = TimePeriodPreset.ALL
TODAY = TimePeriodPreset.TODAY
YESTERDAY = TimePeriodPreset.YESTERDAY
THIS_WEEK = TimePeriodPreset.THIS_WEEK
LAST_WEEK = TimePeriodPreset.LAST_WEEK
THIS_MONTH = TimePeriodPreset.THIS_MONTH
LAST_MONTH = TimePeriodPreset.LAST_MONTH

# Wednesday 13 May 2026, mid-afternoon UTC: no clock change anywhere near.
NOW = dt.datetime(2026, 5, 13, 15, 30, tzinfo=dt.UTC)


class Arguments(TypedDict, total=False):
    """The optional arguments of resolve_time_period, for parametrized cases."""

    preset: TimePeriodPreset
    last_days: int
    last_hours: int
    start: dt.datetime
    end: dt.datetime
    time_zone: str
    max_span: dt.timedelta


def local(wall_time: str, zone: str) -> dt.datetime:
    """Build an aware datetime from a wall-clock time in a zone."""
    return dt.datetime.fromisoformat(wall_time).replace(tzinfo=ZoneInfo(zone))


def bounds(period: ResolvedTimePeriod) -> tuple[str, str]:
    """Render the bounds as ISO strings; the +00:00 in them also pins the bounds to UTC."""
    assert period.start is not None
    assert period.end is not None
    return period.start.isoformat(timespec="minutes"), period.end.isoformat(timespec="minutes")


def resolve_preset(preset: TimePeriodPreset, wall_time: str, zone: str) -> ResolvedTimePeriod:
    """Resolve a preset in a zone at a wall-clock time there."""
    return resolve_time_period(preset=preset, default_time_zone=zone, now=local(wall_time, zone))


def test_time_period_preset_values_equal_names() -> None:
    assert [preset.value for preset in TimePeriodPreset] == [
        preset.name for preset in TimePeriodPreset
    ]


def test_resolve_time_period_defaults_to_last_7_days_in_the_default_zone() -> None:
    period = resolve_time_period(
        default_time_zone="Europe/Berlin", now=local("2026-05-13T15:30", "Europe/Berlin")
    )
    # 7 Berlin days, today included: 7 May 00:00 CEST up to 14 May 00:00 CEST.
    assert bounds(period) == ("2026-05-06T22:00+00:00", "2026-05-13T22:00+00:00")
    assert (period.time_zone, period.label) == ("Europe/Berlin", "Last 7 Days")


@pytest.mark.parametrize(
    ("preset", "start", "end", "label"),
    [
        (TODAY, "2026-05-13T00:00+00:00", "2026-05-14T00:00+00:00", "Today"),
        (YESTERDAY, "2026-05-12T00:00+00:00", "2026-05-13T00:00+00:00", "Yesterday"),
        (THIS_WEEK, "2026-05-11T00:00+00:00", "2026-05-18T00:00+00:00", "This Week"),
        (LAST_WEEK, "2026-05-04T00:00+00:00", "2026-05-11T00:00+00:00", "Last Week"),
        (THIS_MONTH, "2026-05-01T00:00+00:00", "2026-06-01T00:00+00:00", "This Month"),
        (LAST_MONTH, "2026-04-01T00:00+00:00", "2026-05-01T00:00+00:00", "Last Month"),
    ],
)
def test_resolve_time_period_presets_follow_the_calendar(
    preset: TimePeriodPreset, start: str, end: str, label: str
) -> None:
    period = resolve_time_period(preset=preset, default_time_zone="UTC", now=NOW)
    assert bounds(period) == (start, end)
    assert (period.time_zone, period.label) == ("UTC", label)


def test_resolve_time_period_all_is_unbounded() -> None:
    period = resolve_time_period(
        preset=ALL, time_zone="Asia/Tokyo", default_time_zone="UTC", now=NOW
    )
    assert period == ResolvedTimePeriod(start=None, end=None, time_zone="Asia/Tokyo", label="All")


@pytest.mark.parametrize(
    ("preset", "wall_time", "start", "end"),
    [
        # Thursday 1 January: the ISO week began on Monday 29 December.
        (THIS_WEEK, "2026-01-01T09:00", "2025-12-29T00:00+00:00", "2026-01-05T00:00+00:00"),
        (LAST_MONTH, "2026-01-15T09:00", "2025-12-01T00:00+00:00", "2026-01-01T00:00+00:00"),
        (THIS_MONTH, "2026-12-31T23:59", "2026-12-01T00:00+00:00", "2027-01-01T00:00+00:00"),
        # February of a common year, then of a leap year.
        (LAST_MONTH, "2026-03-31T09:00", "2026-02-01T00:00+00:00", "2026-03-01T00:00+00:00"),
        (THIS_MONTH, "2028-02-10T09:00", "2028-02-01T00:00+00:00", "2028-03-01T00:00+00:00"),
        # On a Monday THIS_WEEK starts today; on a Sunday it started six days ago.
        (THIS_WEEK, "2026-05-11T00:00", "2026-05-11T00:00+00:00", "2026-05-18T00:00+00:00"),
        (THIS_WEEK, "2026-05-17T23:59", "2026-05-11T00:00+00:00", "2026-05-18T00:00+00:00"),
    ],
)
def test_resolve_time_period_presets_cross_month_and_year_ends(
    preset: TimePeriodPreset, wall_time: str, start: str, end: str
) -> None:
    assert bounds(resolve_preset(preset, wall_time, "UTC")) == (start, end)


@pytest.mark.parametrize(
    ("last_days", "start", "label"),
    [
        (1, "2026-05-13T00:00+00:00", "Last 1 Day"),
        (3, "2026-05-11T00:00+00:00", "Last 3 Days"),
        (99, "2026-02-04T00:00+00:00", "Last 99 Days"),
    ],
)
def test_resolve_time_period_last_days_runs_from_midnight_to_tomorrow(
    last_days: int, start: str, label: str
) -> None:
    period = resolve_time_period(last_days=last_days, default_time_zone="UTC", now=NOW)
    assert bounds(period) == (start, "2026-05-14T00:00+00:00")
    assert period.label == label


@pytest.mark.parametrize(
    ("last_hours", "start", "label"),
    [
        (1, "2026-05-13T14:30+00:00", "Last 1 Hour"),
        (5, "2026-05-13T10:30+00:00", "Last 5 Hours"),
        (99, "2026-05-09T12:30+00:00", "Last 99 Hours"),
    ],
)
def test_resolve_time_period_last_hours_ends_now(last_hours: int, start: str, label: str) -> None:
    period = resolve_time_period(last_hours=last_hours, default_time_zone="Europe/Berlin", now=NOW)
    assert bounds(period) == (start, "2026-05-13T15:30+00:00")
    assert (period.time_zone, period.label) == ("Europe/Berlin", label)


def test_resolve_time_period_last_hours_counts_elapsed_hours_across_a_clock_change() -> None:
    # 04:00 EDT on 8 March 2026; three hours earlier it was 00:00 EST (02:00-03:00 never happened).
    now = local("2026-03-08T04:00", "America/New_York")
    period = resolve_time_period(last_hours=3, default_time_zone="America/New_York", now=now)
    assert bounds(period) == ("2026-03-08T05:00+00:00", "2026-03-08T08:00+00:00")


def test_resolve_time_period_between_reads_naive_times_in_the_service_zone() -> None:
    period = resolve_time_period(
        start=dt.datetime(2026, 11, 1),
        end=dt.datetime(2026, 11, 8),
        default_time_zone="America/Chicago",
        now=NOW,
    )
    assert bounds(period) == ("2026-11-01T05:00+00:00", "2026-11-08T06:00+00:00")
    assert period.label == "Between 2026-11-01 00:00 and 2026-11-08 00:00 (America/Chicago)"


def test_resolve_time_period_between_reads_naive_times_in_the_requested_zone() -> None:
    period = resolve_time_period(
        start=dt.datetime(2026, 11, 1),
        end=dt.datetime(2026, 11, 8),
        time_zone="Europe/Berlin",
        default_time_zone="UTC",
        now=NOW,
    )
    assert bounds(period) == ("2026-10-31T23:00+00:00", "2026-11-07T23:00+00:00")
    assert period.label == "Between 2026-11-01 00:00 and 2026-11-08 00:00 (Europe/Berlin)"


def test_resolve_time_period_between_a_day_of_the_spring_clock_change_lasts_23_hours() -> None:
    period = resolve_time_period(
        start=dt.datetime(2026, 3, 29),
        end=dt.datetime(2026, 3, 30),
        time_zone="Europe/Berlin",
        default_time_zone="UTC",
        now=NOW,
    )
    assert bounds(period) == ("2026-03-28T23:00+00:00", "2026-03-29T22:00+00:00")


def test_resolve_time_period_between_converts_offsets_to_utc() -> None:
    period = resolve_time_period(
        start=dt.datetime.fromisoformat("2026-11-01T00:00+01:00"),
        end=dt.datetime.fromisoformat("2026-11-07T19:00-04:00"),
        time_zone="Europe/Berlin",
        default_time_zone="UTC",
        now=NOW,
    )
    assert bounds(period) == ("2026-10-31T23:00+00:00", "2026-11-07T23:00+00:00")
    assert period.label == "Between 2026-11-01 00:00 and 2026-11-08 00:00 (Europe/Berlin)"


def test_resolve_time_period_between_label_shows_seconds_only_when_given() -> None:
    period = resolve_time_period(
        start=dt.datetime(2026, 11, 1, 8, 0, 30),
        end=dt.datetime(2026, 11, 1, 9, 0, 0, 250000),
        default_time_zone="UTC",
        now=NOW,
    )
    assert period.label == "Between 2026-11-01 08:00:30 and 2026-11-01 09:00:00.250000 (UTC)"


def test_resolve_time_period_between_allows_exactly_the_longest_span() -> None:
    period = resolve_time_period(
        start=dt.datetime(2026, 10, 1),
        end=dt.datetime(2026, 11, 1),
        default_time_zone="UTC",
        now=NOW,
        max_span=dt.timedelta(days=31),
    )
    assert bounds(period) == ("2026-10-01T00:00+00:00", "2026-11-01T00:00+00:00")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            {"preset": TODAY, "last_days": 3},
            "timePeriod must set at most one of preset, lastDays, lastHours or from + to,"
            " got timePeriod.preset, timePeriod.lastDays",
        ),
        (
            {"last_days": 3, "last_hours": 3},
            "timePeriod must set at most one of preset, lastDays, lastHours or from + to,"
            " got timePeriod.lastDays, timePeriod.lastHours",
        ),
        (
            {"last_hours": 3, "start": dt.datetime(2026, 5, 1), "end": dt.datetime(2026, 5, 2)},
            "timePeriod must set at most one of preset, lastDays, lastHours or from + to,"
            " got timePeriod.lastHours, timePeriod.from, timePeriod.to",
        ),
        (
            {"preset": ALL, "start": dt.datetime(2026, 5, 1)},
            "timePeriod must set at most one of preset, lastDays, lastHours or from + to,"
            " got timePeriod.preset, timePeriod.from",
        ),
        (
            {"start": dt.datetime(2026, 5, 1)},
            "timePeriod.from and timePeriod.to must be given together, got only timePeriod.from",
        ),
        (
            {"end": dt.datetime(2026, 5, 1)},
            "timePeriod.from and timePeriod.to must be given together, got only timePeriod.to",
        ),
        ({"last_days": 0}, "timePeriod.lastDays must be between 1 and 99, got 0"),
        ({"last_days": -1}, "timePeriod.lastDays must be between 1 and 99, got -1"),
        ({"last_days": 100}, "timePeriod.lastDays must be between 1 and 99, got 100"),
        ({"last_days": 120}, "timePeriod.lastDays must be between 1 and 99, got 120"),
        ({"last_hours": 0}, "timePeriod.lastHours must be between 1 and 99, got 0"),
        ({"last_hours": 100}, "timePeriod.lastHours must be between 1 and 99, got 100"),
        (
            {"start": dt.datetime(2026, 5, 2), "end": dt.datetime(2026, 5, 1)},
            "timePeriod.from must be before timePeriod.to,"
            " got from 2026-05-02T00:00:00+00:00 and to 2026-05-01T00:00:00+00:00",
        ),
        (
            # The same instant written with two offsets: an empty period.
            {
                "start": dt.datetime.fromisoformat("2026-05-01T02:00+02:00"),
                "end": dt.datetime(2026, 5, 1),
            },
            "timePeriod.from must be before timePeriod.to,"
            " got from 2026-05-01T00:00:00+00:00 and to 2026-05-01T00:00:00+00:00",
        ),
        (
            {
                "start": dt.datetime(2026, 10, 1),
                "end": dt.datetime(2026, 11, 10),
                "max_span": dt.timedelta(days=31),
            },
            "timePeriod.to must be at most 31 days after timePeriod.from, got 40 days",
        ),
        (
            {
                "start": dt.datetime(2026, 10, 1),
                "end": dt.datetime(2026, 10, 1, 13),
                "max_span": dt.timedelta(hours=12),
            },
            "timePeriod.to must be at most 12 hours after timePeriod.from, got 13 hours",
        ),
        (
            {
                "start": dt.datetime(2026, 10, 1),
                "end": dt.datetime(2026, 10, 2, 0, 30),
                "max_span": dt.timedelta(days=1),
            },
            "timePeriod.to must be at most 1 day after timePeriod.from, got 1 day, 0:30:00",
        ),
        (
            {"time_zone": "Mars/Olympus"},
            "timePeriod.timeZone must be an IANA time zone such as Europe/Berlin,"
            " got 'Mars/Olympus'",
        ),
        (
            {"preset": TODAY, "time_zone": "America"},
            "timePeriod.timeZone must be an IANA time zone such as Europe/Berlin, got 'America'",
        ),
        (
            {"time_zone": "../etc/passwd"},
            "timePeriod.timeZone must be an IANA time zone such as Europe/Berlin,"
            " got '../etc/passwd'",
        ),
        (
            {"time_zone": ""},
            "timePeriod.timeZone must be an IANA time zone such as Europe/Berlin, got ''",
        ),
        (
            {
                "start": dt.datetime.fromisoformat("0001-01-01T00:00+05:00"),
                "end": dt.datetime(2026, 5, 1),
            },
            "timePeriod.from is too close to year 1 or 9999 to convert,"
            " got 0001-01-01T00:00:00+05:00; use a time between 0001-01-02 and 9999-12-30",
        ),
        (
            # Tokyo wall-clock time, but before year 1 in UTC.
            {
                "start": dt.datetime(1, 1, 1, 3),
                "end": dt.datetime(2026, 5, 1),
                "time_zone": "Asia/Tokyo",
            },
            "timePeriod.from is too close to year 1 or 9999 to convert,"
            " got 0001-01-01T03:00:00; use a time between 0001-01-02 and 9999-12-30",
        ),
        (
            # Representable in UTC, but not as Tokyo wall-clock time for the label.
            {
                "start": dt.datetime.fromisoformat("2026-05-01T00:00+00:00"),
                "end": dt.datetime.fromisoformat("9999-12-31T20:00+00:00"),
                "time_zone": "Asia/Tokyo",
            },
            "timePeriod.to is too close to year 1 or 9999 to convert,"
            " got 9999-12-31T20:00:00+00:00; use a time between 0001-01-02 and 9999-12-30",
        ),
    ],
)
def test_resolve_time_period_rejects_bad_input_saying_what_to_fix(
    arguments: Arguments, message: str
) -> None:
    with pytest.raises(TimePeriodError) as raised:
        resolve_time_period(**arguments, default_time_zone="UTC", now=NOW)
    assert str(raised.value) == message


def test_resolve_time_period_rejects_a_naive_now() -> None:
    with pytest.raises(ValueError, match="now must be timezone-aware") as raised:
        resolve_time_period(default_time_zone="UTC", now=dt.datetime(2026, 5, 13, 15, 30))
    # A programming error, not the client's: it must not reach the client as a TimePeriodError.
    assert not isinstance(raised.value, TimePeriodError)


@pytest.mark.parametrize(
    ("zone", "wall_time", "preset", "start", "end"),
    [
        # New York springs forward on Sunday 8 March 2026, 02:00 EST (-5) -> 03:00 EDT (-4).
        ("America/New_York", "2026-03-07T12:00", TODAY, "2026-03-07T05:00", "2026-03-08T05:00"),
        ("America/New_York", "2026-03-08T12:00", TODAY, "2026-03-08T05:00", "2026-03-09T04:00"),
        ("America/New_York", "2026-03-09T12:00", TODAY, "2026-03-09T04:00", "2026-03-10T04:00"),
        ("America/New_York", "2026-03-08T12:00", YESTERDAY, "2026-03-07T05:00", "2026-03-08T05:00"),
        ("America/New_York", "2026-03-09T12:00", YESTERDAY, "2026-03-08T05:00", "2026-03-09T04:00"),
        ("America/New_York", "2026-03-08T12:00", LAST_WEEK, "2026-02-23T05:00", "2026-03-02T05:00"),
        ("America/New_York", "2026-03-11T12:00", LAST_WEEK, "2026-03-02T05:00", "2026-03-09T04:00"),
        # New York falls back on Sunday 1 November 2026, 02:00 EDT (-4) -> 01:00 EST (-5).
        ("America/New_York", "2026-10-31T12:00", TODAY, "2026-10-31T04:00", "2026-11-01T04:00"),
        ("America/New_York", "2026-11-01T12:00", TODAY, "2026-11-01T04:00", "2026-11-02T05:00"),
        ("America/New_York", "2026-11-02T12:00", TODAY, "2026-11-02T05:00", "2026-11-03T05:00"),
        ("America/New_York", "2026-11-02T12:00", YESTERDAY, "2026-11-01T04:00", "2026-11-02T05:00"),
        ("America/New_York", "2026-11-04T12:00", LAST_WEEK, "2026-10-26T04:00", "2026-11-02T05:00"),
        # Berlin springs forward on Sunday 29 March 2026, 02:00 CET (+1) -> 03:00 CEST (+2).
        ("Europe/Berlin", "2026-03-28T12:00", TODAY, "2026-03-27T23:00", "2026-03-28T23:00"),
        ("Europe/Berlin", "2026-03-29T12:00", TODAY, "2026-03-28T23:00", "2026-03-29T22:00"),
        ("Europe/Berlin", "2026-03-30T12:00", TODAY, "2026-03-29T22:00", "2026-03-30T22:00"),
        ("Europe/Berlin", "2026-03-30T12:00", YESTERDAY, "2026-03-28T23:00", "2026-03-29T22:00"),
        ("Europe/Berlin", "2026-04-01T12:00", LAST_WEEK, "2026-03-22T23:00", "2026-03-29T22:00"),
        ("Europe/Berlin", "2026-04-01T12:00", THIS_WEEK, "2026-03-29T22:00", "2026-04-05T22:00"),
        ("Europe/Berlin", "2026-03-29T12:00", THIS_MONTH, "2026-02-28T23:00", "2026-03-31T22:00"),
        # Berlin falls back on Sunday 25 October 2026, 03:00 CEST (+2) -> 02:00 CET (+1).
        ("Europe/Berlin", "2026-10-25T12:00", TODAY, "2026-10-24T22:00", "2026-10-25T23:00"),
        ("Europe/Berlin", "2026-10-26T12:00", YESTERDAY, "2026-10-24T22:00", "2026-10-25T23:00"),
        ("Europe/Berlin", "2026-10-28T12:00", LAST_WEEK, "2026-10-18T22:00", "2026-10-25T23:00"),
        ("Europe/Berlin", "2026-11-02T12:00", LAST_MONTH, "2026-09-30T22:00", "2026-10-31T23:00"),
    ],
)
def test_resolve_time_period_bounds_are_local_midnights_across_clock_changes(
    zone: str, wall_time: str, preset: TimePeriodPreset, start: str, end: str
) -> None:
    period = resolve_preset(preset, wall_time, zone)
    assert bounds(period) == (f"{start}+00:00", f"{end}+00:00")
    assert period.time_zone == zone


@pytest.mark.parametrize(
    ("zone", "day", "hours"),
    [
        ("America/New_York", "2026-03-08", 23),
        ("America/New_York", "2026-11-01", 25),
        ("Europe/Berlin", "2026-03-29", 23),
        ("Europe/Berlin", "2026-10-25", 25),
        ("Europe/Berlin", "2026-10-26", 24),
    ],
)
def test_resolve_time_period_today_lasts_as_long_as_the_local_day(
    zone: str, day: str, hours: int
) -> None:
    period = resolve_preset(TODAY, f"{day}T12:00", zone)
    assert period.start is not None
    assert period.end is not None
    assert period.end - period.start == dt.timedelta(hours=hours)


@pytest.mark.parametrize(
    ("wall_time", "fold", "start"),
    [
        # Both 01:30s of New York's 25-hour day are still 1 November.
        ("2026-11-01T01:30", 0, "2026-11-01T04:00+00:00"),
        ("2026-11-01T01:30", 1, "2026-11-01T04:00+00:00"),
        # The last minute before midnight, right after the clocks went forward.
        ("2026-03-08T23:59", 0, "2026-03-08T05:00+00:00"),
    ],
)
def test_resolve_time_period_today_holds_through_the_repeated_hour(
    wall_time: str, fold: int, start: str
) -> None:
    now = local(wall_time, "America/New_York").replace(fold=fold)
    period = resolve_time_period(preset=TODAY, default_time_zone="America/New_York", now=now)
    assert bounds(period)[0] == start


def test_resolve_time_period_takes_today_from_the_zone_not_from_utc() -> None:
    # 22:30 UTC on 29 March is already 00:30 CEST on 30 March in Berlin.
    now = dt.datetime(2026, 3, 29, 22, 30, tzinfo=dt.UTC)
    period = resolve_time_period(
        preset=TODAY, time_zone="Europe/Berlin", default_time_zone="UTC", now=now
    )
    assert bounds(period) == ("2026-03-29T22:00+00:00", "2026-03-30T22:00+00:00")


def test_resolve_time_period_last_days_spans_a_clock_change() -> None:
    period = resolve_time_period(
        last_days=7,
        default_time_zone="Europe/Berlin",
        now=local("2026-03-31T12:00", "Europe/Berlin"),
    )
    # 25 March 00:00 CET to 1 April 00:00 CEST: 7 days less the hour Berlin skipped.
    assert bounds(period) == ("2026-03-24T23:00+00:00", "2026-03-31T22:00+00:00")


@pytest.mark.parametrize(
    ("zone", "day", "start", "next_start"),
    [
        # Havana skips 00:00-01:00 on 8 March 2026 (-5 -> -4): the day starts at 01:00 CDT.
        ("America/Havana", "2026-03-08", "2026-03-08T05:00+00:00", "2026-03-09T04:00+00:00"),
        # Santiago skips 00:00-01:00 on 6 September 2026 (-4 -> -3).
        ("America/Santiago", "2026-09-06", "2026-09-06T04:00+00:00", "2026-09-07T03:00+00:00"),
    ],
)
def test_resolve_time_period_day_without_a_midnight_starts_at_its_first_instant(
    zone: str, day: str, start: str, next_start: str
) -> None:
    today = resolve_preset(TODAY, f"{day}T12:00", zone)
    assert bounds(today) == (start, next_start)
    # The day before ends exactly where this one starts: no gap, no overlap.
    day_before = resolve_preset(YESTERDAY, f"{day}T12:00", zone)
    assert bounds(day_before)[1] == start


def test_resolve_time_period_day_with_two_midnights_starts_at_the_first() -> None:
    # Havana falls back on 1 November 2026 at 01:00 CDT (-4) to 00:00 CST (-5): midnight twice.
    period = resolve_preset(TODAY, "2026-11-01T12:00", "America/Havana")
    assert bounds(period) == ("2026-11-01T04:00+00:00", "2026-11-02T05:00+00:00")


@pytest.mark.parametrize("start", [dt.datetime(2026, 3, 29, 2, 0), dt.datetime(2026, 3, 29, 2, 30)])
def test_resolve_time_period_refuses_a_wall_clock_time_the_clocks_skip(start: dt.datetime) -> None:
    with pytest.raises(TimePeriodError, match="never happens in Europe/Berlin"):
        resolve_time_period(
            start=start,
            end=dt.datetime(2026, 3, 29, 4),
            time_zone="Europe/Berlin",
            default_time_zone="UTC",
            now=NOW,
        )


def test_resolve_time_period_reads_a_wall_clock_time_that_happens_twice_as_the_first() -> None:
    period = resolve_time_period(
        start=dt.datetime(2026, 10, 25, 2, 30),  # 02:30 CEST, then again 02:30 CET
        end=dt.datetime(2026, 10, 25, 4),
        time_zone="Europe/Berlin",
        default_time_zone="UTC",
        now=NOW,
    )
    assert bounds(period) == ("2026-10-25T00:30+00:00", "2026-10-25T03:00+00:00")
