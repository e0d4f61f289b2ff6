"""The change log (table `callback_status_change`): appended to in the transaction that made
the changes, read by the relay that publishes them, by subscribers that resume, and as each
callback's history; pruned after its retention."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from service.db.models.status_change import StatusChangeEntry
from service.events.changes import StatusChange

# The lock writers take right before they append (PostgreSQL): IDs then follow commit order.
# Any constant works, as long as nothing else in the database takes the same advisory lock.
_APPEND_LOCK = 0x706F6D_63686C  # "pom" "chl"

# Rows per statement when replaying: bounded memory, and a few round trips per thousand.
REPLAY_CHUNK = 1000


@dataclass(frozen=True, slots=True)
class ChangeOrigin:
    """Who made a set of changes: the mutation's field name (or the expiry sweep) and the
    API key it ran with, when there was one."""

    made_by: str
    api_key_id: int | None = None


EXPIRY_SWEEP = ChangeOrigin("expiry sweep")


async def append(
    session: AsyncSession,
    changes: Sequence[StatusChange],
    origin: ChangeOrigin,
    *,
    published_at: dt.datetime | None,
) -> list[StatusChange]:
    """Write changes to the log in the caller's transaction; return them with their IDs.

    The caller commits right after: on PostgreSQL the transaction-scoped lock is held from
    here to commit, so a later ID is always committed later. `published_at` is set when the
    transport publishes at commit itself (NOTIFY), else the relay sets it after publishing.
    """
    if not changes:
        return []
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _APPEND_LOCK})
    ids = await session.scalars(
        insert(StatusChangeEntry).returning(StatusChangeEntry.id, sort_by_parameter_order=True),
        [
            {
                "callback_id": change.callback_id,
                "previous_status": change.previous_status,
                "status": change.status,
                "changed_at": change.changed_at,
                "made_by": origin.made_by,
                "api_key_id": origin.api_key_id,
                "published_at": published_at,
            }
            for change in changes
        ],
    )
    return [
        dataclasses.replace(change, change_id=change_id)
        for change, change_id in zip(changes, ids, strict=True)
    ]


def _as_change(entry: StatusChangeEntry) -> StatusChange:
    return StatusChange(
        entry.callback_id, entry.previous_status, entry.status, entry.changed_at, entry.id
    )


async def changes_after(
    session: AsyncSession, after: int, *, limit: int = REPLAY_CHUNK
) -> list[StatusChange]:
    """The next changes after ID `after`, in commit order."""
    entries = await session.scalars(
        select(StatusChangeEntry)
        .where(StatusChangeEntry.id > after)
        .order_by(StatusChangeEntry.id)
        .limit(limit)
    )
    return [_as_change(entry) for entry in entries]


async def oldest_id(session: AsyncSession) -> int | None:
    """The ID of the oldest change still in the log; None when it is empty."""
    return await session.scalar(select(func.min(StatusChangeEntry.id)))


async def newest_id(session: AsyncSession) -> int | None:
    """The ID of the newest change in the log; None when it is empty."""
    return await session.scalar(select(func.max(StatusChangeEntry.id)))


async def contains(session: AsyncSession, change_id: int) -> bool:
    """Whether the change with this ID is in the log."""
    found = await session.scalar(
        select(StatusChangeEntry.id).where(StatusChangeEntry.id == change_id)
    )
    return found is not None


async def unpublished(
    session: AsyncSession, *, changed_before: dt.datetime, limit: int
) -> list[StatusChange]:
    """Changes no transport took, made before `changed_before` (younger ones are still
    being published by the instance that committed them)."""
    query = (
        select(StatusChangeEntry)
        .where(
            StatusChangeEntry.published_at.is_(None),
            StatusChangeEntry.changed_at < changed_before,
        )
        .order_by(StatusChangeEntry.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        # Instances relaying at once take different rows.
        query = query.with_for_update(skip_locked=True)
    return [_as_change(entry) for entry in await session.scalars(query)]


async def mark_published(
    session: AsyncSession, change_ids: Sequence[int], published_at: dt.datetime
) -> None:
    """Record that a transport took these changes."""
    if change_ids:
        await session.execute(
            update(StatusChangeEntry)
            .where(StatusChangeEntry.id.in_(change_ids))
            .values(published_at=published_at)
        )


async def prune(session: AsyncSession, *, changed_before: dt.datetime) -> int:
    """Delete the changes older than the retention; return how many went."""
    result = await session.execute(
        delete(StatusChangeEntry).where(StatusChangeEntry.changed_at < changed_before)
    )
    return cast(CursorResult[Any], result).rowcount  # a DELETE's result has a row count
