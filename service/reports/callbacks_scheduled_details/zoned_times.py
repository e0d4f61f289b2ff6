"""Instants written as ISO 8601 in a time zone, with its offset, fast enough for every time of
every row of a large export.

The export reads its times as the stores hold them in UTC, as text: turning them into
datetimes (asyncpg's decoding) and writing them back (`astimezone(zone).isoformat()`, some
2 µs) took half of a CSV row's time, four times a row. In UTC the text needs only its
separator and its fraction put the way `isoformat` writes them. In another zone it is parsed
(`fromisoformat`, in C) and moved by the zone's offset, which changes only at the zone's
transitions, so the offset of each UTC hour is worked out once and a time is written by the
naive `isoformat` (much cheaper than the aware one) with the offset after it. An hour in which
the offset changes (its first and last instants differ) is never cached: its times take
`astimezone` each. Either way the result is exactly `astimezone(zone).isoformat()`'s.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable

_LAST_MICROSECOND = dt.timedelta(hours=1, microseconds=-1)
# An hour whose offset changes: its times are converted one by one.
_CHANGES = (dt.timedelta(0), "")


def iso_in_zone(zone: zoneinfo.ZoneInfo) -> Callable[[dt.datetime], str]:
    """How a naive UTC time is written in `zone`: ISO 8601 with the zone's offset then, as
    `time.replace(tzinfo=UTC).astimezone(zone).isoformat()` writes it."""
    if zone.key == "UTC":

        def in_utc(moment: dt.datetime) -> str:
            return moment.isoformat() + "+00:00"

        return in_utc

    hours: dict[tuple[int, int], tuple[dt.timedelta, str]] = {}

    def in_zone(moment: dt.datetime) -> str:
        key = (moment.toordinal(), moment.hour)
        offset = hours.get(key)
        if offset is None:
            if len(hours) >= MAX_REMEMBERED_HOURS:
                hours.clear()
            offset = hours[key] = _hour_offset(moment, zone)
        if offset is _CHANGES:
            return moment.replace(tzinfo=dt.UTC).astimezone(zone).isoformat()
        return (moment + offset[0]).isoformat() + offset[1]

    return in_zone


def _hour_offset(moment: dt.datetime, zone: zoneinfo.ZoneInfo) -> tuple[dt.timedelta, str]:
    """The offset of `zone` through the UTC hour of `moment`, and how ISO 8601 writes it;
    _CHANGES when it is not the same all through the hour."""
    start = moment.replace(minute=0, second=0, microsecond=0, tzinfo=dt.UTC)
    first, last = start.astimezone(zone), (start + _LAST_MICROSECOND).astimezone(zone)
    offset = first.utcoffset()
    if offset is None or offset != last.utcoffset():
        return _CHANGES
    written = first.isoformat()
    # The offset as isoformat writes it: after the seconds (and fraction, none here).
    return offset, written[len(first.replace(tzinfo=None).isoformat()) :]


def iso_text_in_zone(zone: zoneinfo.ZoneInfo) -> Callable[[str], str]:
    """How a UTC wall-clock time given as text, as the stores give it ("2026-11-29
    02:59:45.08446" from PostgreSQL's `timestamp` output, which drops the fraction's trailing
    zeros; "2026-11-29 02:59:45.084460" as SQLite keeps it, six digits always), is written in
    `zone`, as `iso_in_zone` writes the datetime.

    Where the zone's offset is whole minutes through the UTC hour (every offset in use since
    the 1970s), only the date, hour and minute change: the hour's local date and hour are
    looked up by the UTC hour's text, the minute moved by the offset's minutes, and the
    seconds and fraction kept as they are, with no datetime made at all.
    """
    if zone.key == "UTC":
        return _utc_text_as_iso
    in_zone = iso_in_zone(zone)
    hours: dict[str, _LocalHour] = {}

    def from_text(text: str) -> str:
        hour = text[: len("2026-11-29 02")]
        local = hours.get(hour)
        if local is None:
            if len(hours) >= MAX_REMEMBERED_HOURS:
                hours.clear()
            local = hours[hour] = _local_hour(dt.datetime.fromisoformat(hour + ":00"), zone)
        if local is _NOT_WHOLE_MINUTES:
            return in_zone(dt.datetime.fromisoformat(text))
        same_hour, next_hour, minutes, offset = local
        rest = _after_the_hour(text)
        if not minutes:
            return same_hour + rest + offset
        minute = int(rest[1:3]) + minutes
        if minute < 60:
            return same_hour + _MINUTES[minute] + rest[3:] + offset
        return next_hour + _MINUTES[minute - 60] + rest[3:] + offset

    return from_text


# Hours whose local form is remembered, at most: a few years' worth, a few hundred KB.
MAX_REMEMBERED_HOURS = 50_000
_MINUTES = [f":{minute:02d}" for minute in range(60)]
# A UTC hour in a zone: its local date and hour ("2026-11-29T08"), the same for the minutes
# the offset's minutes carry into the next hour ("2026-11-29T09"), those minutes (0..59),
# and the offset as ISO 8601 writes it ("+05:30").
_LocalHour = tuple[str, str, int, str]
# An hour whose offset is not whole minutes all through (or changes within it).
_NOT_WHOLE_MINUTES: _LocalHour = ("", "", 0, "")


def _local_hour(hour: dt.datetime, zone: zoneinfo.ZoneInfo) -> _LocalHour:
    """A naive UTC hour as `zone` writes it; _NOT_WHOLE_MINUTES unless its offset is whole
    minutes all through."""
    through_the_hour = _hour_offset(hour, zone)
    offset, written = through_the_hour
    if through_the_hour is _CHANGES or offset % dt.timedelta(minutes=1):
        return _NOT_WHOLE_MINUTES
    # Offset = whole hours (maybe negative) + 0..59 minutes, which move the minute forward.
    minutes = (offset // dt.timedelta(minutes=1)) % 60
    local = hour + offset - dt.timedelta(minutes=minutes)
    date_and_hour = len("2026-11-29T08")
    return (
        local.isoformat()[:date_and_hour],
        (local + dt.timedelta(hours=1)).isoformat()[:date_and_hour],
        minutes,
        written,
    )


def _utc_text_as_iso(text: str) -> str:
    if len(text) == len("2026-11-29 02:59:45.084460") and not text.endswith("000000"):
        # Six fraction digits, not all zero: nearly every time, already as isoformat has it.
        return text.replace(" ", "T", 1) + "+00:00"
    return text.replace(" ", "T", 1)[: len("2026-11-29T02")] + _after_the_hour(text) + "+00:00"


def _after_the_hour(text: str) -> str:
    """The minutes, seconds and fraction of a stored time as isoformat writes them
    (":59:45.084460"): a fraction with six digits, or none at all when it is zero."""
    rest = text[len("2026-11-29 02") :]
    if len(rest) > len(":59:45"):
        rest = rest.ljust(len(":59:45.084460"), "0")
        if rest.endswith(".000000"):
            rest = rest[: len(":59:45")]
    return rest
