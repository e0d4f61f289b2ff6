"""The current time, for the callback rules, mutations and sweeps."""

from __future__ import annotations

import datetime as dt


def utc_now() -> dt.datetime:
    """The current instant, aware."""
    return dt.datetime.now(dt.UTC)
