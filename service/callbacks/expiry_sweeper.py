"""The background task in `serve` that expires due callbacks, as `expireDueCallbacks` does."""

from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy.ext.asyncio import AsyncSession

from service.callbacks import rules
from service.callbacks.transactions import Outcome, Transactions
from service.clock import utc_now
from service.events.change_log import EXPIRY_SWEEP

logger = logging.getLogger(__name__)


async def expire_due_callbacks_now(transactions: Transactions) -> int:
    """Expire what is due now; safe on many instances at once (each callback expires once)."""

    async def expire(session: AsyncSession) -> Outcome[None]:
        now = utc_now()  # per attempt: a retried sweep expires what is due when it runs
        return await rules.expire_due_callbacks(session, as_of=now, now=now)

    return len((await transactions.run(expire, EXPIRY_SWEEP)).changes)


async def sweep_forever(transactions: Transactions, interval_seconds: float) -> None:
    """Expire due callbacks every interval until cancelled; a failed sweep is retried later."""
    while True:
        try:
            started = time.perf_counter()
            expired = await expire_due_callbacks_now(transactions)
            logger.info(
                "expiry sweep: %d due callbacks expired",
                expired,
                extra={
                    "status_changes": expired,
                    "duration_ms": round(1000 * (time.perf_counter() - started), 2),
                },
            )
        except Exception:
            logger.exception("expiry sweep failed; retrying in %s s", interval_seconds)
        await asyncio.sleep(interval_seconds)
