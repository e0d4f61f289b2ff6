"""The background task in `serve` that expires due callbacks, as `expireDueCallbacks` does."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.callbacks import lifecycle
from service.events.callback_events import CallbackEvents, utc_now

logger = logging.getLogger(__name__)


async def expire_due_callbacks_now(
    events: CallbackEvents, write_session_maker: async_sessionmaker[AsyncSession]
) -> int:
    """Expire what is due now; safe on many instances at once (each callback expires once)."""

    async def expire(session: AsyncSession) -> tuple[int, list[lifecycle.StatusChange]]:
        now = utc_now()
        changes = await lifecycle.expire_due_callbacks(session, as_of=now, now=now)
        return len(changes), changes

    return await events.run(write_session_maker, expire)


async def sweep_forever(
    events: CallbackEvents,
    write_session_maker: async_sessionmaker[AsyncSession],
    interval_seconds: float,
) -> None:
    """Expire due callbacks every interval until cancelled; a failed sweep is retried later."""
    while True:
        try:
            expired = await expire_due_callbacks_now(events, write_session_maker)
            if expired:
                logger.info("expired %d due callbacks", expired)
        except Exception:
            logger.exception("expiry sweep failed; retrying in %s s", interval_seconds)
        await asyncio.sleep(interval_seconds)
