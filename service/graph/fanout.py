"""Subscription events executed once for every subscriber that gets the same response.

Subscribers over a WebSocket whose operation, variables and row scope are the same get the
same response to a change. They join one `DeliveryGroup`, registered with the hub as one sink:
for each change it matches, the group executes the operation once, encodes the response once,
and hands each subscriber its message as text (the protocol's frame around the shared payload).
Each subscriber writes its own messages in order, checking its key first, so a slow socket or
a key lookup never holds up the others, and a subscriber that falls too far behind is closed
with SUBSCRIBER_TOO_SLOW as the hub's own subscribers are.

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
from strawberry.types import ExecutionResult

from service.errors import ClientError, SubscriberTooSlowError, UnauthenticatedError
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
# Whether the subscriber's key still holds (checked again before each message).
KeyCheck = Callable[[], Awaitable[bool]]


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
        self._ending: ClientError | None = None
        self._closed = False  # its socket failed: nothing more is written
        self._leave: Callable[[], None] | None = None

    def push(self, message: str | OwnExecution) -> None:
        """Queue a payload (or an event to execute) for `deliver` to write."""
        if self._ending is not None or self._closed:
            return
        if len(self._pending) >= self._backlog:
            self._pending.clear()
            self._ending = SubscriberTooSlowError(
                f"subscription closed: more than {self._backlog} changes waited for this "
                "client; resubscribe and read faster, or narrow the filter"
            )
        else:
            self._pending.append(message)
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def deliver(self) -> ClientError:
        """Write the queued messages as they come, in order, until the subscription ends
        with an error, which is returned (it is also cancelled, when the client completes
        it or goes away)."""
        loop = asyncio.get_running_loop()
        while self._ending is None:
            if not self._pending or self._closed:
                self._wake = loop.create_future()
                await self._wake
                continue
            pending = self._pending.popleft()
            # A key revoked while the subscription runs ends it at the next change.
            if not await self._key_holds():
                self.revoked = True
                return UnauthenticatedError("the API key is no longer valid")
            try:
                payload = (
                    pending
                    if isinstance(pending, str)
                    else encode_payload(await self.execute(pending.event))
                )
                await self.socket.send_text(f"{self.socket.frame_prefix}{payload}}}")
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
        self, change_filter: ChangeFilter, make_event: Callable[[DeliveredChange], object]
    ) -> None:
        self.change_filter = change_filter
        self._make_event = make_event
        self.members: dict[GroupMember, None] = {}  # in joining order
        self._changes: collections.deque[DeliveredChange] = collections.deque()
        self._worker: asyncio.Task[None] | None = None

    @property
    def subscriber_count(self) -> int:
        return len(self.members)

    def offer(self, change: DeliveredChange) -> None:
        if not self.change_filter.matches(change):
            return
        self._changes.append(change)
        if self._worker is None:
            self._worker = asyncio.create_task(self._deliver())

    def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()

    async def _deliver(self) -> None:
        try:
            while self._changes:
                event = self._make_event(self._changes.popleft())
                message = await self._shared_message(event)
                for member in list(self.members):
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
            return None
        return None if result.errors else encode_payload(result)


def join_group(
    hub: EventHub,
    key: Hashable,
    change_filter: ChangeFilter,
    make_event: Callable[[DeliveredChange], object],
    member: GroupMember,
) -> None:
    """Make `member` one of the group under `key` (made on first use) until it leaves."""
    group = hub.shared_sink(key, lambda: DeliveryGroup(change_filter, make_event))
    group.members[member] = None

    def leave() -> None:
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
