"""The unit of work of every mutation: an operation runs in one transaction, and the status
changes it made are published once that transaction has committed."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service import metrics
from service.clock import utc_now
from service.errors import ConflictError
from service.events import change_log
from service.events.change_log import ChangeOrigin
from service.events.changes import StatusChange
from service.events.relay import ChangeLogRelay
from service.events.transports import CallbackEvents

ResultT = TypeVar("ResultT")

logger = logging.getLogger(__name__)

_ATTEMPTS = 5
# deadlock_detected, serialization_failure
_RETRYABLE_SQLSTATES = {"40P01", "40001"}
_UNIQUE_VIOLATION = "23505"


@dataclass(frozen=True, slots=True)
class Outcome(Generic[ResultT]):
    """What an operation did: its result, and the status changes it made (none for most)."""

    result: ResultT
    changes: list[StatusChange] = field(default_factory=list)


# An operation of the callback rules or the reference data, its arguments bound: it gets the
# transaction's session and must not commit it.
Operation = Callable[[AsyncSession], Awaitable[Outcome[ResultT]]]


class Transactions:
    """Runs operations on the write engine, writes the status changes they make to the change
    log in the same transaction, and publishes them through `events`."""

    def __init__(
        self,
        write_session_maker: async_sessionmaker[AsyncSession],
        events: CallbackEvents,
        relay: ChangeLogRelay,
    ) -> None:
        self._write_session_maker = write_session_maker
        self._events = events
        self._relay = relay

    async def run(self, operation: Operation[ResultT], origin: ChangeOrigin) -> Outcome[ResultT]:
        """Run an operation in one transaction, its status changes logged in it as made by
        `origin`; publish them after commit. The outcome's changes carry their log IDs.

        PostgreSQL may abort one of two transactions that lock the same callbacks in opposite
        orders (a campaign's termination against a completion); the aborted one left nothing
        behind, so it runs again from the start.
        """
        transport = self._events.transport
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                async with self._write_session_maker() as session, session.begin():
                    outcome = await operation(session)
                    logged = await change_log.append(
                        session,
                        outcome.changes,
                        origin,
                        published_at=None if transport.needs_relay else utc_now(),
                    )
                    await transport.stage(session, logged)
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
            if logged:
                await self._publish(logged)
            return Outcome(outcome.result, logged)
        raise AssertionError("unreachable")

    async def _publish(self, changes: list[StatusChange]) -> None:
        """The transaction has committed: a broker failure now must not turn the mutation into
        an error (a retry would repeat it); the changes stay unpublished in the log, and the
        relay publishes them later (when the transport needs it; see `needs_relay`)."""
        transport = self._events.transport
        try:
            await transport.publish(changes)
            metrics.EVENTS_PUBLISHED.inc(len(changes))
            if transport.needs_relay:
                self._relay.note_published([change.change_id for change in changes])
        except Exception:
            logger.exception(
                "could not publish %d committed status changes; the relay will", len(changes)
            )


def _is_unique_violation(error: IntegrityError) -> bool:
    return _sqlstate(error) == _UNIQUE_VIOLATION or "UNIQUE constraint failed" in str(error.orig)


def _sqlstate(error: DBAPIError) -> str | None:
    code = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    return str(code) if code else None
