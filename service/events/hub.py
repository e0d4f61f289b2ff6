"""Status changes reaching this instance, fanned out to its subscribers.

Transports hand the hub small messages (callback ID, statuses, time); the hub loads each batch
of callbacks once, in one statement, and gives every subscriber whose filter matches its own
copy through a bounded queue. A subscriber that falls behind is closed with an error instead of
slowing anyone else down.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar, cast

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service import metrics
from service.auth.row_scope import UNRESTRICTED, RowScope
from service.db.models.callback import Callback, CallbackStatus
from service.db.models.campaign import Campaign
from service.errors import SubscriberTooSlowError
from service.events import change_log
from service.events.changes import StatusChange

logger = logging.getLogger(__name__)

DEFAULT_SUBSCRIBER_BACKLOG = 1000
_LOAD_CHUNK = 5000
# Change IDs a hub remembers having taken, to drop a change that arrives twice (the relay
# and the instance that committed it may both publish it; a catch-up rereads some).
_REMEMBERED_CHANGES = 100_000
_CATCH_UP_ATTEMPTS = 5
_CATCH_UP_PAUSE_SECONDS = 0.5
_RETRY_LOAD_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class DeliveredChange:
    """A change with the callback as it was loaded on arrival."""

    change_id: int
    callback: Callback
    campaign_name: str
    previous_status: CallbackStatus | None
    status: CallbackStatus
    changed_at: dt.datetime
    # What the change's subscribers share, built once by the first (the event they receive).
    shared: dict[object, object] = field(default_factory=dict, compare=False)


@dataclass(frozen=True, slots=True)
class ChangeFilter:
    """What a subscriber wants; None means any."""

    campaign_names: frozenset[str] | None = None
    creator_agent_id: str | None = None
    contact_id: str | None = None
    statuses: frozenset[CallbackStatus] | None = None
    # The subscriber's own rows only (agent keys); the rule is the one reads use.
    row_scope: RowScope = UNRESTRICTED

    def matches(self, change: DeliveredChange) -> bool:
        return (
            self.row_scope.admits(change.callback)
            and (self.campaign_names is None or change.campaign_name in self.campaign_names)
            and (
                self.creator_agent_id is None
                or change.callback.creator_agent_id == self.creator_agent_id
            )
            and (self.contact_id is None or change.callback.contact_id == self.contact_id)
            and (self.statuses is None or change.status in self.statuses)
        )


class ChangeSink(Protocol):
    """Whatever the hub offers matching changes to: one subscriber, or a group of them."""

    @property
    def change_filter(self) -> ChangeFilter: ...

    @property
    def subscriber_count(self) -> int: ...

    def offer(self, change: DeliveredChange) -> None:
        """Take a change its filter matches (offer is called for every change; the sink
        checks the filter). Must not block: the hub offers each change to every sink."""


SinkT = TypeVar("SinkT", bound=ChangeSink)


class Subscriber:
    """One subscription's bounded backlog of changes."""

    subscriber_count = 1

    def __init__(self, change_filter: ChangeFilter, backlog: int) -> None:
        self.change_filter = change_filter
        self._backlog = backlog
        self._pending: collections.deque[DeliveredChange] = collections.deque()
        self._ready = asyncio.Event()
        self.overflowed = False

    def offer(self, change: DeliveredChange) -> None:
        if self.overflowed or not self.change_filter.matches(change):
            return
        if len(self._pending) >= self._backlog:
            self.overflowed = True
            self._pending.clear()
        else:
            self._pending.append(change)
        self._ready.set()

    async def changes(self) -> AsyncIterator[DeliveredChange]:
        while True:
            await self._ready.wait()
            self._ready.clear()
            if self.overflowed:
                metrics.SUBSCRIBERS_TOO_SLOW.inc()
                raise SubscriberTooSlowError(
                    f"subscription closed: more than {self._backlog} changes waited for this "
                    "client; resubscribe and read faster, or narrow the filter"
                )
            while self._pending:
                metrics.EVENTS_DELIVERED.inc()
                yield self._pending.popleft()


class EventHub:
    """This instance's subscribers, fed by whichever transport carries the changes."""

    def __init__(
        self,
        session_maker: async_sessionmaker[AsyncSession],
        *,
        backlog: int = DEFAULT_SUBSCRIBER_BACKLOG,
    ) -> None:
        self._session_maker = session_maker
        self._backlog = backlog
        self._sinks: set[ChangeSink] = set()
        self._shared_sinks: dict[Hashable, ChangeSink] = {}
        self._inbox: asyncio.Queue[StatusChange] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        # The change IDs taken lately, oldest first (a dict keeps insertion order).
        self._taken: dict[int, None] = {}
        # The newest change ID taken; None until the transport first connects.
        self._newest_taken: int | None = None

    @property
    def backlog(self) -> int:
        """Most changes a subscriber may have waiting before it is closed as too slow."""
        return self._backlog

    @property
    def subscriber_count(self) -> int:
        """Subscribers on this instance, those in shared sinks included."""
        return sum(sink.subscriber_count for sink in self._sinks)

    async def start(self) -> None:
        self._worker = asyncio.create_task(self._deliver_forever(), name="event-hub")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None

    def receive(self, changes: Iterable[StatusChange]) -> None:
        """Take changes from a transport, each once; delivery happens on the hub's own task."""
        for change in changes:
            change_id = change.change_id
            if change_id in self._taken:
                continue
            self._taken[change_id] = None
            if len(self._taken) > _REMEMBERED_CHANGES:
                del self._taken[next(iter(self._taken))]
            if self._newest_taken is None or change_id > self._newest_taken:
                self._newest_taken = change_id
            if self._sinks:
                self._inbox.put_nowait(change)

    async def catch_up(self) -> None:
        """The transport has (re)connected: take from the change log what was committed
        since the newest change taken, which the transport may have dropped while it was
        away. On the first connection there is nothing to catch up: note where the log is.

        Tried a few times: after a database restart the first pooled connections are dead,
        and each failure makes the pool replace them."""
        for attempt in range(1, _CATCH_UP_ATTEMPTS + 1):
            try:
                await self._catch_up_once()
                return
            except Exception:
                if attempt == _CATCH_UP_ATTEMPTS:
                    logger.exception("could not catch up on status changes from the log")
                    return
                await asyncio.sleep(_CATCH_UP_PAUSE_SECONDS)

    async def _catch_up_once(self) -> None:
        async with self._session_maker() as session:
            if self._newest_taken is None:
                self._newest_taken = await change_log.newest_id(session) or 0
                return
            # From where the hub stood when this began: changes the transport delivers
            # meanwhile move `_newest_taken` past ones still to be read here.
            after = self._newest_taken
            while changes := await change_log.changes_after(session, after):
                logger.info("caught up on %d status changes from the log", len(changes))
                self.receive(changes)
                after = changes[-1].change_id

    @contextlib.asynccontextmanager
    async def subscribe(self, change_filter: ChangeFilter) -> AsyncIterator[Subscriber]:
        """Register a subscriber for as long as the block runs."""
        subscriber = Subscriber(change_filter, self._backlog)
        self._sinks.add(subscriber)
        metrics.SUBSCRIPTIONS.inc()
        try:
            yield subscriber
        finally:
            self._sinks.discard(subscriber)
            metrics.SUBSCRIPTIONS.dec()

    def shared_sink(self, key: Hashable, make: Callable[[], SinkT]) -> SinkT:
        """The sink registered under `key`, made by `make` and registered if there is none:
        subscribers that would receive the same thing share one (see `drop_shared_sink`)."""
        sink = self._shared_sinks.get(key)
        if sink is None:
            sink = self._shared_sinks[key] = make()
            self._sinks.add(sink)
        return cast(SinkT, sink)  # made by `make` for this key

    def drop_shared_sink(self, key: Hashable) -> None:
        """Stop offering changes to the sink under `key` (its last subscriber left)."""
        sink = self._shared_sinks.pop(key, None)
        if sink is not None:
            self._sinks.discard(sink)

    async def _deliver_forever(self) -> None:
        batch: list[StatusChange] = []
        failures = 0
        while True:
            if not batch:
                batch.append(await self._inbox.get())
            while not self._inbox.empty():
                batch.append(self._inbox.get_nowait())
            try:
                delivered = await self.load(batch)
            except Exception:
                # The database is restarting, say: the changes are kept, in order, and loaded
                # again shortly; dropping them would lose them for good (they count as taken).
                failures += 1
                logger.warning(
                    "could not load %d status changes for subscribers; trying again",
                    len(batch),
                    exc_info=failures == 1,
                )
                await asyncio.sleep(_RETRY_LOAD_SECONDS)
                continue
            batch, failures = [], 0
            for change in delivered:
                for sink in list(self._sinks):
                    sink.offer(change)

    async def load(self, batch: Sequence[StatusChange]) -> list[DeliveredChange]:
        """Load the batch's callbacks as they are now: one statement per few thousand (a
        statement takes at most 32,767 parameters on PostgreSQL). Changes of callbacks
        that no longer exist are left out."""
        ids = sorted({change.callback_id for change in batch})
        found: dict[str, tuple[Callback, str]] = {}
        async with self._session_maker() as session:
            for start in range(0, len(ids), _LOAD_CHUNK):
                rows = await session.execute(
                    select(Callback, Campaign.name)
                    .join(Campaign, Callback.campaign_id == Campaign.id)
                    .where(Callback.callback_id.in_(ids[start : start + _LOAD_CHUNK]))
                )
                found.update((callback.callback_id, (callback, name)) for callback, name in rows)
        delivered = []
        for change in batch:
            if change.callback_id in found:
                callback, name = found[change.callback_id]
                delivered.append(
                    DeliveredChange(
                        change.change_id,
                        callback,
                        name,
                        change.previous_status,
                        change.status,
                        change.changed_at,
                    )
                )
        return delivered
