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
    `zone`, as `iso_in_zone` writes the datetime."""
    if zone.key == "UTC":
        return _utc_text_as_iso
    in_zone = iso_in_zone(zone)

    def from_text(text: str) -> str:
        return in_zone(dt.datetime.fromisoformat(text))

    return from_text


def _utc_text_as_iso(text: str) -> str:
    iso = text.replace(" ", "T", 1)
    if len(iso) > len("2026-11-29T02:59:45"):
        # isoformat writes a fraction with six digits, or none at all when it is zero.
        iso = iso.ljust(len("2026-11-29T02:59:45.084460"), "0")
        if iso.endswith(".000000"):
            iso = iso[: -len(".000000")]
    return iso + "+00:00"
