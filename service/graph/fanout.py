"""Subscription events executed once for every subscriber that gets the same response.

Subscribers over a WebSocket whose operation, variables and row scope are the same get the
same response to a change. They join one `DeliveryGroup`, registered with the hub as one sink:
for each change it matches, the group executes the operation once, encodes the response once,
and hands each subscriber its message as text (the protocol's frame around the shared payload).
Each subscriber writes its own messages in order, checking its key first, so a slow socket or
a key lookup never holds up the others. A subscriber with more than the backlog of changes
waiting is closed with SUBSCRIBER_TOO_SLOW, as the hub's own subscribers are; so is every
member of a group whose executions fall that far behind the changes. A member gets the
changes offered after it joined, as a subscriber of the hub would.

The subscription's resolver joins a group only when the WebSocket handler says, through
`SUBSCRIPTION_SOCKET`, which socket and operation it runs for. It then ends its stream at once,
handing the subscription over: Strawberry's per-subscription machinery (extension hooks,
generators, about 150 objects a subscriber) is released, and the handler waits on the member
until the subscription ends, by `complete`, by disconnecting, or with an error it sends as the
stream would have (a revoked key, too slow). A response with errors is not shared: each
subscriber then executes the operation for itself, and its errors are its own.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable, Hashable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import orjson
from graphql import GraphQLError
from strawberry.types import ExecutionResult

from service import metrics
from service.errors import SubscriberTooSlowError, UnauthenticatedError
from service.events.hub import ChangeFilter, DeliveredChange, EventHub

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class SubscriptionSocket:
    """The WebSocket operation a subscription runs for, as its protocol handler knows it, and
    the group member the subscription was handed over to, if it was."""

    operation_id: str
    query: str
    variables: dict[str, Any] | None
    operation_name: str | None
    # The protocol's message up to its payload, e.g. '{"id":"1","type":"next","payload":'.
    frame_prefix: str
    send_text: Callable[[str], Awaitable[None]]
    member: GroupMember | None = None


# Set by the WebSocket protocol handlers in each operation's own task.
SUBSCRIPTION_SOCKET: ContextVar[SubscriptionSocket | None] = ContextVar(
    "SUBSCRIPTION_SOCKET", default=None
)

# An event's response for one subscriber (executed with its context).
EventExecution = Callable[[object], Awaitable[ExecutionResult]]
# Why the subscriber's key no longer holds, None while it does (checked before each message).
KeyCheck = Callable[[], Awaitable[str | None]]


def encode_payload(result: ExecutionResult) -> str:
    """A result as the protocols' payload: data, then errors and extensions when present."""
    payload: dict[str, object] = {"data": result.data}
    if result.errors:
        payload["errors"] = [error.formatted for error in result.errors]
    if result.extensions:
        payload["extensions"] = result.extensions
    return orjson.dumps(payload).decode()


@dataclass(frozen=True, slots=True)
class OwnExecution:
    """An event a member executes for itself (the shared response had errors)."""

    event: object


class GroupMember:
    """One subscriber of a group: its socket, its context, and what waits to be written.

    Its messages are written by `deliver`, which runs in the subscription's own operation task
    (no task per message); `push` only queues and wakes it, so the group never waits on a
    socket.
    """

    def __init__(
        self,
        socket: SubscriptionSocket,
        execute: EventExecution,
        key_holds: KeyCheck,
        backlog: int,
    ) -> None:
        self.socket = socket
        self.execute = execute
        self._key_holds = key_holds
        self._backlog = backlog
        self.revoked = False  # its key failed a check: it may not execute for others
        # Shared payloads ready to write, or events to execute first.
        self._pending: collections.deque[str | OwnExecution] = collections.deque()
        self._wake: asyncio.Future[None] | None = None
        self._ending: GraphQLError | None = None
        self._closed = False  # its socket failed: nothing more is written
        self._leave: Callable[[], None] | None = None
        # The number of the last change offered to its group before it joined: it gets only
        # later ones, as a subscriber of the hub would.
        self.joined_after = 0

    def push(self, message: str | OwnExecution) -> None:
        """Queue a payload (or an event to execute) for `deliver` to write."""
        if len(self._pending) >= self._backlog:
            self.end(too_slow(self._backlog))
            return
        if self._ending is None and not self._closed:
            self._pending.append(message)
            self._wake_up()

    def end(self, error: GraphQLError) -> None:
        """End the subscription with `error` (what `deliver` returns); nothing queued is
        written."""
        if self._ending is None:
            self._ending = error
            self._pending.clear()
            self._wake_up()
            if isinstance(error, SubscriberTooSlowError):
                metrics.SUBSCRIBERS_TOO_SLOW.inc()

    def _wake_up(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def deliver(self) -> GraphQLError:
        """Write the queued messages as they come, in order, until the subscription ends
        with an error, which is returned (it is also cancelled, when the client completes
        it or goes away). An unexpected failure ends it as on Strawberry's stream: the
        handler masks the error (SERVICE_UNAVAILABLE when the database is out)."""
        loop = asyncio.get_running_loop()
        while self._ending is None:
            if not self._pending or self._closed:
                self._wake = loop.create_future()
                await self._wake
                continue
            pending = self._pending.popleft()
            try:
                # A key revoked or expired while the subscription runs ends it at the next
                # change.
                refusal = await self._key_holds()
                if refusal is not None:
                    self.revoked = True
                    return UnauthenticatedError(refusal)
                payload = (
                    pending
                    if isinstance(pending, str)
                    else encode_payload(await self.execute(pending.event))
                )
            except Exception as error:
                return GraphQLError(str(error), original_error=error)
            try:
                await self.socket.send_text(f"{self.socket.frame_prefix}{payload}}}")
                metrics.EVENTS_DELIVERED.inc()
            except Exception as error:  # its socket went away; the handler cancels the rest
                logger.debug("subscriber %s stopped writing: %r", self.socket.operation_id, error)
                self._closed = True
                self._pending.clear()
        return self._ending

    def leave(self) -> None:
        """The subscription is over: leave the group; nothing more is queued."""
        self._closed = True
        self._pending.clear()
        if self._leave is not None:
            self._leave()
            self._leave = None


class DeliveryGroup:
    """Subscribers with one operation, variables and row scope: one execution per change."""

    def __init__(
        self,
        change_filter: ChangeFilter,
        make_event: Callable[[DeliveredChange], object],
        backlog: int,
    ) -> None:
        self.change_filter = change_filter
        self._make_event = make_event
        self.members: dict[GroupMember, None] = {}  # in joining order
        # Changes waiting for the group's execution, each with its number.
        self._changes: collections.deque[tuple[int, DeliveredChange]] = collections.deque()
        self.offered = 0  # changes offered so far
        self._backlog = backlog
        self._worker: asyncio.Task[None] | None = None

    @property
    def subscriber_count(self) -> int:
        return len(self.members)

    def offer(self, change: DeliveredChange) -> None:
        if not self.change_filter.matches(change):
            return
        self.offered += 1
        if len(self._changes) >= self._backlog:
            # Executing falls behind the changes (a slow database, an expensive document):
            # every member is that far behind, and is closed as one that reads too slowly.
            self._changes.clear()
            for member in self.members:
                member.end(too_slow(self._backlog))
            return
        self._changes.append((self.offered, change))
        if self._worker is None:
            self._worker = asyncio.create_task(self._deliver())

    def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()

    async def _deliver(self) -> None:
        try:
            while self._changes:
                number, change = self._changes.popleft()
                event = self._make_event(change)
                message = await self._shared_message(event)
                for member in list(self.members):
                    if member.joined_after < number:
                        member.push(OwnExecution(event) if message is None else message)
        finally:
            self._worker = None

    async def _shared_message(self, event: object) -> str | None:
        """The event's payload, executed once with a member whose key is still valid; None
        when every member must execute it for itself (the response carries errors)."""
        leader = next((m for m in self.members if not m.revoked), None)
        if leader is None:
            return None
        try:
            result = await leader.execute(event)
        except Exception:
            logger.exception("a shared subscription event failed; its subscribers execute it")
            result = None
        if result is None or result.errors:
            # Another member leads next time: this one's key may have been revoked.
            if leader in self.members:
                del self.members[leader]
                self.members[leader] = None
            return None
        return encode_payload(result)


def too_slow(backlog: int) -> SubscriberTooSlowError:
    """The error that closes a subscriber with more than `backlog` changes waiting."""
    return SubscriberTooSlowError(
        f"subscription closed: more than {backlog} changes waited for this client; "
        "resubscribe and read faster, or narrow the filter"
    )


def join_group(
    hub: EventHub,
    key: Hashable,
    change_filter: ChangeFilter,
    make_event: Callable[[DeliveredChange], object],
    member: GroupMember,
) -> None:
    """Make `member` one of the group under `key` (made on first use) until it leaves."""
    group = hub.shared_sink(key, lambda: DeliveryGroup(change_filter, make_event, hub.backlog))
    member.joined_after = group.offered
    group.members[member] = None
    metrics.SUBSCRIPTIONS.inc()

    def leave() -> None:
        metrics.SUBSCRIPTIONS.dec()
        group.members.pop(member, None)
        if not group.members:
            group.close()
            hub.drop_shared_sink(key)

    member._leave = leave


async def deliver_handed_over(socket: SubscriptionSocket) -> ExecutionResult | None:
    """For a subscription handed over to a group (its stream has ended): deliver its events
    until it ends, leave the group, and return the result that reports the error it ended
    with; None for a subscription that was not handed over."""
    member = socket.member
    if member is None:
        return None
    try:
        return ExecutionResult(data=None, errors=[await member.deliver()])
    finally:
        member.leave()
