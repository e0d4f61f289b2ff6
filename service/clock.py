"""The service's one source of the current time."""

from __future__ import annotations

import datetime as dt


def utc_now() -> dt.datetime:
    """The current instant, aware."""
    return dt.datetime.now(dt.UTC)
