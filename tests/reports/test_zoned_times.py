"""Times written in a zone from the per-hour offsets, and from the stores' text, equal
`astimezone`'s: transitions, odd offsets and fractions with trailing zeros included."""

from __future__ import annotations

import datetime as dt
import random
import zoneinfo

import pytest

from service.reports.callbacks_scheduled_details import zoned_times
from service.reports.callbacks_scheduled_details.zoned_times import iso_in_zone, iso_text_in_zone

ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",  # half-hour daylight saving
    "Asia/Kathmandu",  # +05:45
    "America/St_Johns",  # -03:30, and transitions at local 00:01 once
    "Pacific/Chatham",  # +12:45 / +13:45
    "Europe/Dublin",  # negative daylight saving in tzdata
    "Africa/Casablanca",  # clocks go back for Ramadan
    "Etc/GMT+5",
    "Europe/Amsterdam",  # +00:19:32 in the 1930s: an offset with seconds
]


def _transitions(zone: zoneinfo.ZoneInfo, years: range) -> list[dt.datetime]:
    """UTC instants at which the zone's offset changes (found hour by hour, then narrowed)."""
    found = []
    hour = dt.timedelta(hours=1)
    moment = dt.datetime(years.start, 1, 1, tzinfo=dt.UTC)
    end = dt.datetime(years.stop, 1, 1, tzinfo=dt.UTC)
    offset = moment.astimezone(zone).utcoffset()
    while moment < end:
        following = moment + hour
        if following.astimezone(zone).utcoffset() != offset:
            low, high = moment, following
            while high - low > dt.timedelta(seconds=1):
                middle = low + (high - low) / 2
                if middle.astimezone(zone).utcoffset() == offset:
                    low = middle
                else:
                    high = middle
            found.append(high)
            offset = following.astimezone(zone).utcoffset()
        moment = following
    return found


@pytest.mark.parametrize("name", ZONES)
def test_times_in_a_zone_are_written_as_astimezone_writes_them(name: str) -> None:
    zone = zoneinfo.ZoneInfo(name)
    chances = random.Random(name)
    instants = [
        dt.datetime(1920, 1, 1, tzinfo=dt.UTC)
        + dt.timedelta(microseconds=chances.randrange(120 * 365 * 86_400 * 10**6))
        for _ in range(3_000)
    ]
    for transition in _transitions(zone, range(1930, 1940)) + _transitions(zone, range(2025, 2028)):
        for seconds in (-3601, -1, 0, 1, 1799, 3599, 3600):
            instants.append(transition + dt.timedelta(seconds=seconds))
            instants.append(transition + dt.timedelta(seconds=seconds, microseconds=500))
    written, from_text = iso_in_zone(zone), iso_text_in_zone(zone)
    # Twice: the second time from the cached hours.
    for _ in range(2):
        for instant in instants:
            expected = instant.astimezone(zone).isoformat()
            utc = instant.replace(tzinfo=None)
            assert written(utc) == expected, (name, instant)
            for text in _as_the_stores_give_it(utc):
                assert from_text(text) == expected, (name, text)


def _as_the_stores_give_it(utc: dt.datetime) -> list[str]:
    """SQLite's stored text (six fraction digits always) and PostgreSQL's `timestamp` output
    (the fraction's trailing zeros dropped, none when it is zero)."""
    sqlite = utc.strftime("%Y-%m-%d %H:%M:%S.%f")
    postgresql = utc.isoformat(sep=" ").rstrip("0").rstrip(".") if utc.microsecond else str(utc)
    return [sqlite, postgresql]


@pytest.mark.parametrize("microsecond", [0, 500_000, 80_000, 84_460, 1, 999_999])
def test_utc_text_is_written_as_isoformat_writes_it(microsecond: int) -> None:
    utc = dt.datetime(2026, 11, 29, 2, 59, 45, microsecond)
    for text in _as_the_stores_give_it(utc):
        assert iso_text_in_zone(zoneinfo.ZoneInfo("UTC"))(text) == (
            utc.replace(tzinfo=dt.UTC).isoformat()
        )


def test_remembered_hours_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zoned_times, "MAX_REMEMBERED_HOURS", 3)
    zone = zoneinfo.ZoneInfo("Asia/Kolkata")
    written, from_text = iso_in_zone(zone), iso_text_in_zone(zone)
    start = dt.datetime(2026, 3, 1, 0, 59, 59, 999_999)
    for hours in range(10):  # more hours than remembered: they are forgotten, not wrong
        utc = start + dt.timedelta(hours=hours)
        expected = utc.replace(tzinfo=dt.UTC).astimezone(zone).isoformat()
        assert written(utc) == from_text(str(utc)) == expected
