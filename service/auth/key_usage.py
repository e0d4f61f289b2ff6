"""When each API key was last used: noted in memory on every request, written to
`api_key.last_used_at` in the background at most once a minute per key.

A request only notes the time in a dictionary; a task writes what was noted since its last
round, once a minute, in one statement, and once more when the service stops. So the column
is at most about a minute behind, costs no request a statement, and a busy key costs one UPDATE
a minute, not one a request. Several processes each write at most once a minute per key, and
the statement leaves alone a key whose recorded use another process wrote less than a minute
before, so the column only moves forward.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.auth.api_keys import mark_keys_used
from service.clock import utc_now

logger = logging.getLogger(__name__)

# A key's last use is written at most this often, and the writer wakes this often.
WRITE_EVERY = dt.timedelta(minutes=1)


class KeyUsage:
    """Notes each key's last use and writes it at most once every `WRITE_EVERY` per key."""

    def __init__(
        self,
        write_session_maker: async_sessionmaker[AsyncSession],
        *,
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self._session_maker = write_session_maker
        self._clock = clock
        self._noted: dict[int, dt.datetime] = {}  # uses not yet written, the latest per key
        self._written: dict[int, dt.datetime] = {}  # the use last written, per key
        self._writer: asyncio.Task[None] | None = None

    def note(self, key_id: int) -> None:
        """Note that a request used the key now; costs no statement."""
        now = self._clock()
        written = self._written.get(key_id)
        if written is None or now - written >= WRITE_EVERY:
            self._noted[key_id] = now

    async def write(self) -> None:
        """Write the uses noted since the last write, in one statement. On failure they stay
        noted (unless newer ones came meanwhile) for the next round."""
        noted, self._noted = self._noted, {}
        if not noted:
            return
        try:
            await mark_keys_used(self._session_maker, noted, at_most_every=WRITE_EVERY)
        except Exception as error:
            logger.warning("could not write when %d API keys were last used: %s", len(noted), error)
            for key_id, at in noted.items():
                self._noted.setdefault(key_id, at)
            return
        self._written.update(noted)

    async def start(self) -> None:
        """Write noted uses in the background, every `WRITE_EVERY`."""
        self._writer = asyncio.create_task(self._write_forever(), name="api-key-usage")

    async def stop(self) -> None:
        """Stop the background writes, then write what is still noted."""
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None
        await self.write()

    async def _write_forever(self) -> None:
        while True:
            await asyncio.sleep(WRITE_EVERY.total_seconds())
            await self.write()
