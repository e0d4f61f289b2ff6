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
from service.errors import ConflictError
from service.events.changes import StatusChange
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
    """Runs operations on the write engine and publishes their changes through `events`."""

    def __init__(
        self, write_session_maker: async_sessionmaker[AsyncSession], events: CallbackEvents
    ) -> None:
        self._write_session_maker = write_session_maker
        self._events = events

    async def run(self, operation: Operation[ResultT]) -> Outcome[ResultT]:
        """Run an operation in one transaction; publish its status changes after commit.

        PostgreSQL may abort one of two transactions that lock the same callbacks in opposite
        orders (a campaign's termination against a completion); the aborted one left nothing
        behind, so it runs again from the start.
        """
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                async with self._write_session_maker() as session, session.begin():
                    outcome = await operation(session)
                    await self._events.transport.stage(session, outcome.changes)
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
            await self._publish(outcome.changes)
            return outcome
        raise AssertionError("unreachable")

    async def _publish(self, changes: list[StatusChange]) -> None:
        """The transaction has committed: a broker failure now must not turn the mutation into
        an error (a retry would repeat it); it is logged and those events are lost."""
        try:
            await self._events.transport.publish(changes)
            metrics.EVENTS_PUBLISHED.inc(len(changes))
        except Exception:
            logger.exception("could not publish %d committed status changes", len(changes))


def _is_unique_violation(error: IntegrityError) -> bool:
    return _sqlstate(error) == _UNIQUE_VIOLATION or "UNIQUE constraint failed" in str(error.orig)


def _sqlstate(error: DBAPIError) -> str | None:
    code = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    return str(code) if code else None
