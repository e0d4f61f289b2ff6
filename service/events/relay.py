"""The relay: every instance's background task that publishes, from the change log, the
committed changes no transport took (the instance crashed between commit and publish, or
Redis was away), and prunes the log after its retention."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Sequence

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service import metrics
from service.clock import utc_now
from service.db.models.status_change import StatusChangeEntry
from service.events import change_log
from service.events.transports import EventTransport

logger = logging.getLogger(__name__)

# A change younger than this is left to the instance that committed it, which publishes it
# right after commit; the relay takes only what that instance evidently never published.
PUBLISH_GRACE = dt.timedelta(seconds=5)
_BATCH = 1000
_PRUNE_EVERY = dt.timedelta(hours=1)
_FIRST_PRUNE_AFTER = dt.timedelta(minutes=1)


class ChangeLogRelay:
    """Publishes what the log holds unpublished, and prunes it; see the module docstring."""

    def __init__(
        self,
        session_maker: async_sessionmaker[AsyncSession],
        transport: EventTransport,
        *,
        retention: dt.timedelta,
        read_session_maker: async_sessionmaker[AsyncSession] | None = None,
    ) -> None:
        """`session_maker` writes (the mutations' engine); `read_session_maker`, when given,
        reads whether anything waits, without taking SQLite's write connection."""
        self._session_maker = session_maker
        self._read_session_maker = read_session_maker or session_maker
        # Changes a transport took right after their commit, not yet marked in the log.
        self._noted: list[int] = []
        self._transport = transport
        self._retention = retention
        # The first prune comes an interval after start, not during it (nor in the middle
        # of a short-lived test's requests).
        self._pruned_at = utc_now() - _PRUNE_EVERY + _FIRST_PRUNE_AFTER

    def note_published(self, change_ids: Sequence[int]) -> None:
        """Changes the committing instance published: marked in the log at the relay's next
        round, in one statement for all of them, not a transaction per mutation (within the
        grace, so no relay takes them for unpublished)."""
        self._noted.extend(change_ids)

    async def mark_noted(self) -> None:
        """Mark the noted changes published; on failure they stay noted for the next round."""
        noted, self._noted = self._noted, []
        try:
            for start in range(0, len(noted), _BATCH):
                async with self._session_maker() as session, session.begin():
                    await change_log.mark_published(
                        session, noted[start : start + _BATCH], utc_now()
                    )
        except BaseException:
            self._noted[:0] = noted
            raise

    async def relay_once(self, *, now: dt.datetime | None = None) -> int:
        """Mark what was noted published, then publish the unpublished changes made before
        the grace; return how many."""
        if not self._transport.needs_relay:
            return 0  # nothing is ever left unpublished
        await self.mark_noted()
        now = now or utc_now()
        changed_before = now - PUBLISH_GRACE
        published = 0
        while await self._any_unpublished(changed_before):
            async with self._session_maker() as session, session.begin():
                changes = await change_log.unpublished(
                    session, changed_before=changed_before, limit=_BATCH
                )
                if not changes:
                    break  # another instance holds them
                await self._transport.publish(changes)
                await change_log.mark_published(
                    session, [change.change_id for change in changes], utc_now()
                )
            published += len(changes)
            metrics.EVENTS_PUBLISHED.inc(len(changes))
            logger.warning("relayed %d committed status changes nobody had published", len(changes))
        return published

    async def _any_unpublished(self, changed_before: dt.datetime) -> bool:
        """A read first, on the read engine, so that an idle relay never takes SQLite's write
        connection."""
        async with self._read_session_maker() as session:
            return bool(
                await session.scalar(
                    select(
                        exists().where(
                            StatusChangeEntry.published_at.is_(None),
                            StatusChangeEntry.changed_at < changed_before,
                        )
                    )
                )
            )

    async def prune_once(self, *, now: dt.datetime | None = None) -> int:
        """Delete the changes older than the retention; return how many went."""
        now = now or utc_now()
        async with self._session_maker() as session, session.begin():
            pruned = await change_log.prune(session, changed_before=now - self._retention)
        self._pruned_at = now
        if pruned:
            logger.info("pruned %d status changes older than %s", pruned, self._retention)
        return pruned

    async def run_forever(self, interval_seconds: float) -> None:
        """Relay every interval and prune every hour, until cancelled; a failed round is
        logged and tried again at the next."""
        while True:
            try:
                await self.relay_once()
                now = utc_now()
                if now - self._pruned_at >= _PRUNE_EVERY:
                    await self.prune_once(now=now)
            except Exception:
                logger.exception("change log relay failed; trying again in %s s", interval_seconds)
            await asyncio.sleep(interval_seconds)
