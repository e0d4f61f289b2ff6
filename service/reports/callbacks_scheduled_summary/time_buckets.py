"""Creation times grouped in SQL by UTC quarter hour, then read as local days and hours.

SQLite has no time zones, so neither store is asked for local times: the statement groups by
the UTC instant cut down to its quarter hour (an integer, the same expression's result on both
stores), and each quarter hour is then placed in its local day and hour with zoneinfo. Every
UTC offset in use since 1972 is a whole number of quarter hours (India's +05:30, Nepal's
+05:45, Chatham's +12:45 included), and the clocks change on a quarter hour, so a quarter hour
never straddles a local hour or day: counting by quarter hour and adding them up is exact,
also on the days the clocks change (a local day of 23 or 25 hours, an hour that happens twice).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, ColumnElement
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

QUARTER_HOUR_SECONDS = 15 * 60
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class quarter_hour(FunctionElement[int]):  # noqa: N801 - an SQL function, named as SQL names them
    """The quarter hour since 1970-01-01T00:00Z an instant column falls in (an integer)."""

    type = BigInteger()
    inherit_cache = True
    name = "quarter_hour"


@compiles(quarter_hour, "postgresql")
def _quarter_hour_postgresql(element: quarter_hour, compiler: SQLCompiler, **kw: Any) -> str:
    # The divisor is written in, not bound: a bound one would make the GROUP BY's expression
    # another parameter than the select list's, which PostgreSQL refuses to match.
    instant = compiler.process(element.clauses, **kw)
    return f"CAST(floor(EXTRACT(EPOCH FROM {instant}) / {QUARTER_HOUR_SECONDS}) AS BIGINT)"


@compiles(quarter_hour, "sqlite")
def _quarter_hour_sqlite(element: quarter_hour, compiler: SQLCompiler, **kw: Any) -> str:
    # Instants are naive UTC text on SQLite; strftime('%s') reads them as UTC.
    instant = compiler.process(element.clauses, **kw)
    return f"(CAST(strftime('%s', {instant}) AS INTEGER) / {QUARTER_HOUR_SECONDS})"


def quarter_hour_of(instant: Any) -> ColumnElement[int]:
    """SQL: the quarter hour (since the epoch, UTC) `instant` falls in."""
    return quarter_hour(instant)


@dataclass(frozen=True, slots=True)
class LocalTime:
    """Where a quarter hour falls in a time zone: its local day, and the start of its local
    hour as a UTC instant (two local times that differ only by their offset, as the hour
    that happens twice when the clocks go back, compare equal in Python; instants do not)."""

    day: str
    hour: dt.datetime


class LocalQuarterHours:
    """Quarter hours placed in one time zone's days and hours, each worked out once."""

    def __init__(self, zone: zoneinfo.ZoneInfo) -> None:
        self.zone = zone
        self._placed: dict[int, LocalTime] = {}

    def place(self, quarter: int) -> LocalTime:
        """The local day and hour of quarter hour number `quarter` (since the epoch, UTC)."""
        placed = self._placed.get(quarter)
        if placed is None:
            instant = _EPOCH + dt.timedelta(seconds=quarter * QUARTER_HOUR_SECONDS)
            local = instant.astimezone(self.zone)
            # Back to the hour on the UTC line, by the local minutes gone in it.
            hour_start = instant - dt.timedelta(minutes=local.minute, seconds=local.second)
            placed = self._placed[quarter] = LocalTime(
                day=local.date().isoformat(), hour=hour_start
            )
        return placed

    def local(self, instant: dt.datetime) -> dt.datetime:
        """`instant` in the zone, with the zone's offset then."""
        return instant.astimezone(self.zone)
