"""A callback's status change, as the callback rules make it and as it travels between
instances (its wire form)."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from service.db.models.callback import CallbackStatus

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StatusChange:
    """One callback's status change; `previous_status` is None for a new callback.

    `change_id` is its ID in the change log (commit order), 0 until it is written there.
    """

    callback_id: str
    previous_status: CallbackStatus | None
    status: CallbackStatus
    changed_at: dt.datetime
    change_id: int = 0


def encode_changes(changes: Sequence[StatusChange]) -> list[str]:
    """Wire form: a JSON array per change, small enough for any transport."""
    return [
        json.dumps(
            [
                change.change_id,
                change.callback_id,
                change.previous_status.value if change.previous_status else None,
                change.status.value,
                change.changed_at.isoformat(),
            ],
            separators=(",", ":"),
        )
        for change in changes
    ]


def decode_change(item: Sequence[Any]) -> StatusChange:
    """Read one change in wire form (already parsed from JSON)."""
    change_id, callback_id, previous, status, changed_at = item
    return StatusChange(
        callback_id=callback_id,
        previous_status=CallbackStatus(previous) if previous else None,
        status=CallbackStatus(status),
        changed_at=dt.datetime.fromisoformat(changed_at),
        change_id=int(change_id),
    )


def join_batches(messages: list[str], limit: int) -> list[str]:
    """Join changes in wire form into JSON arrays of at most `limit` bytes each."""
    payloads: list[str] = []
    current: list[str] = []
    size = 2
    for message in messages:
        if current and size + len(message) + 1 > limit:
            payloads.append("[" + ",".join(current) + "]")
            current, size = [], 2
        current.append(message)
        size += len(message) + 1
    if current:
        payloads.append("[" + ",".join(current) + "]")
    return payloads


def decode_batch(payload: str) -> list[StatusChange]:
    """Read a JSON array of changes; a malformed payload is logged and yields none."""
    try:
        return [decode_change(item) for item in json.loads(payload)]
    except (ValueError, TypeError, KeyError):
        logger.warning("ignoring a malformed status-change payload: %.200s", payload)
        return []
