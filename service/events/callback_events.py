"""Status changes end to end: made in a transaction, published once it commits, delivered."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.callbacks.lifecycle import StatusChange
from service.errors import ConflictError
from service.events.hub import EventHub
from service.events.transports import (
    EventTransport,
    InProcessTransport,
    PostgresqlNotifyTransport,
    RedisTransport,
)
from service.settings import Settings

ResultT = TypeVar("ResultT")

logger = logging.getLogger(__name__)

_ATTEMPTS = 5
# deadlock_detected, serialization_failure
_RETRYABLE_SQLSTATES = {"40P01", "40001"}
_UNIQUE_VIOLATION = "23505"


def _is_unique_violation(error: IntegrityError) -> bool:
    return _sqlstate(error) == _UNIQUE_VIOLATION or "UNIQUE constraint failed" in str(error.orig)


def _sqlstate(error: DBAPIError) -> str | None:
    code = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    return str(code) if code else None


Operation = Callable[[AsyncSession], Awaitable[tuple[ResultT, list[StatusChange]]]]


class CallbackEvents:
    """The chosen transport and this instance's hub, started and stopped together."""

    def __init__(self, transport: EventTransport, hub: EventHub) -> None:
        self.transport = transport
        self.hub = hub

    async def start(self) -> None:
        await self.hub.start()
        await self.transport.start(self.hub)

    async def stop(self) -> None:
        await self.transport.stop()
        await self.hub.stop()

    async def run(
        self, write_session_maker: async_sessionmaker[AsyncSession], operation: Operation[ResultT]
    ) -> ResultT:
        """Run an operation in one transaction; publish its status changes after commit.

        PostgreSQL may abort one of two transactions that lock the same callbacks in opposite
        orders (a campaign's termination against a completion); the aborted one left nothing
        behind, so it runs again from the start.
        """
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                async with write_session_maker() as session, session.begin():
                    result, changes = await operation(session)
                    await self.transport.stage(session, changes)
            except IntegrityError as error:
                # Two requests raced to create the same row (a job, a callback ID); once more,
                # the operation sees the winner's row and answers as for any existing one.
                if not _is_unique_violation(error):
                    raise
                if attempt == _ATTEMPTS:
                    raise ConflictError(
                        "the change conflicts with data written at the same time; "
                        "read the current state and try again"
                    ) from error
                continue
            except DBAPIError as error:
                if attempt == _ATTEMPTS or _sqlstate(error) not in _RETRYABLE_SQLSTATES:
                    raise
                logger.info("transaction aborted (%s); running it again", _sqlstate(error))
                continue
            await self._publish(changes)
            return result
        raise AssertionError("unreachable")

    async def _publish(self, changes: list[StatusChange]) -> None:
        """The transaction has committed: a broker failure now must not turn the mutation into
        an error (a retry would repeat it); it is logged and those events are lost."""
        try:
            await self.transport.publish(changes)
        except Exception:
            logger.exception("could not publish %d committed status changes", len(changes))


def create_callback_events(
    settings: Settings, session_maker: async_sessionmaker[AsyncSession]
) -> CallbackEvents:
    """Redis when REDIS_URL is set, else LISTEN/NOTIFY on PostgreSQL, else in-process."""
    transport: EventTransport
    if settings.redis_url:
        transport = RedisTransport(settings.redis_url)
    elif not settings.is_sqlite:
        transport = PostgresqlNotifyTransport(settings.database_url)
    else:
        transport = InProcessTransport()
    return CallbackEvents(transport, EventHub(session_maker, backlog=settings.subscriber_backlog))


def utc_now() -> dt.datetime:
    """The current instant, aware."""
    return dt.datetime.now(dt.UTC)
