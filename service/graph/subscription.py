"""Live status changes of callbacks, filtered on the server."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncGenerator
from typing import Annotated, Any, cast

import strawberry
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from service.db.models.callback import CallbackStatus
from service.errors import BadUserInputError, CursorExpiredError
from service.events import change_log
from service.events.hub import ChangeFilter, DeliveredChange
from service.graph.context import Info
from service.graph.fanout import SUBSCRIPTION_SOCKET, GroupMember, SubscriptionSocket, join_group
from service.graph.nodes import CallbackNode


@strawberry.input(description="Which changes to receive; all given conditions must hold.")
class CallbackStatusChangedFilter:
    campaign_names: list[str] | None = None
    creator_agent_id: str | None = None
    contact_id: str | None = None
    statuses: list[CallbackStatus] | None = strawberry.field(
        default=None, description="New statuses to receive."
    )


@strawberry.type(description="A callback's status changed (or it was scheduled: no previous).")
class CallbackStatusChange:
    change_id: strawberry.ID = strawberry.field(
        description=(
            "The change's position in the change log, in commit order: subscribe again with "
            "`after` set to the last one received to get every change missed meanwhile."
        )
    )
    callback: CallbackNode
    previous_status: CallbackStatus | None
    status: CallbackStatus
    changed_at: dt.datetime
    # The responses executed for this change on the general path, by what they depend on
    # (operation, variables, row scope): every subscriber of the change gets this one object,
    # so those that would get the same response share one execution
    # (SubscriptionEventExecutionContext). Delivery groups share theirs by themselves.
    shared_results: strawberry.Private[dict[Any, Any]]

    @classmethod
    def of(cls, change: DeliveredChange) -> CallbackStatusChange:
        """The change's one event object, made by its first subscriber (or group)."""
        event = change.shared.get(cls)
        if event is None:
            event = change.shared[cls] = cls(
                change_id=strawberry.ID(str(change.change_id)),
                callback=CallbackNode.from_row(change.callback),
                previous_status=change.previous_status,
                status=change.status,
                changed_at=change.changed_at,
                shared_results={},
            )
        return cast(CallbackStatusChange, event)


_AFTER = (
    "The changeId of the last change received: resume after it. The change log keeps changes "
    "for POMREPORT_CHANGE_LOG_RETENTION_DAYS; an older one is refused with CURSOR_EXPIRED."
)


@strawberry.type(description="Live updates.")
class Subscription:
    @strawberry.subscription(
        description=(
            "Every status change of a callback, after its transaction commits. With `after`, "
            "first every matching change committed since that one, in commit order, then the "
            "live ones: no gap and no duplicate."
        )
    )
    async def callback_status_changed(
        self,
        info: Info,
        filter: CallbackStatusChangedFilter | None = None,
        after: Annotated[strawberry.ID | None, strawberry.argument(description=_AFTER)] = None,
    ) -> AsyncGenerator[CallbackStatusChange, None]:
        resume_after = None if after is None else _change_id(after)
        wanted = filter or CallbackStatusChangedFilter()
        change_filter = ChangeFilter(
            campaign_names=frozenset(wanted.campaign_names) if wanted.campaign_names else None,
            creator_agent_id=wanted.creator_agent_id,
            contact_id=wanted.contact_id,
            statuses=frozenset(wanted.statuses) if wanted.statuses else None,
            row_scope=info.context.caller.require("this operation needs an API key").row_scope,
        )
        socket = SUBSCRIPTION_SOCKET.get()
        if socket is not None and info.context.settings.compiled_execution and after is None:
            _hand_over(info, socket, change_filter)
            return  # the socket's handler delivers the events from here on
        hub = info.context.events.hub
        # Subscribed before the log is read: a change committed meanwhile is either in the
        # log's answer or arrives live (or both, and is then skipped by its ID).
        async with hub.subscribe(change_filter) as subscriber:
            replayed_through = 0
            if resume_after is not None:
                await _check_resumable(info, resume_after)
                replayed_through = resume_after
                while True:
                    async with info.context.unscoped_session_maker() as session:
                        logged = await change_log.changes_after(session, replayed_through)
                    if not logged:
                        break
                    replayed_through = logged[-1].change_id
                    for change in await hub.load(logged):
                        if change_filter.matches(change):
                            yield await _event(info, change)
            async for change in subscriber.changes():
                # IDs follow commit order: the log's answer held every change up to its last.
                if change.change_id > replayed_through:
                    yield await _event(info, change)


async def _event(info: Info, change: DeliveredChange) -> CallbackStatusChange:
    """The event for a change, once the caller's key is checked again: a key revoked or
    expired while the subscription runs ends it at the next change."""
    await info.context.recheck_key()
    info.context.caller.require()
    info.context.refresh_loaders()
    return CallbackStatusChange.of(change)


def _change_id(after: str) -> int:
    """The change log ID a client sent as `after`."""
    if not after.isascii() or not after.isdigit() or len(after) > 18:
        raise BadUserInputError(
            f"after: {after[:40]!r} is not a changeId; give the changeId of the last change "
            "this subscription delivered"
        )
    return int(after)


async def _check_resumable(info: Info, after: int) -> None:
    """Refuse to resume after a change the log does not hold: one pruned after the retention
    (CURSOR_EXPIRED: the client must reload, then subscribe afresh), or one that never was."""
    async with info.context.unscoped_session_maker() as session:
        if await change_log.contains(session, after):
            return
        oldest = await change_log.oldest_id(session)
    if oldest is None or after < oldest:
        days = info.context.settings.change_log_retention_days
        raise CursorExpiredError(
            f"change {after} is no longer in the change log, which keeps changes for {days} "
            "days: load the current state, then subscribe without after"
        )
    raise BadUserInputError(f"after: no status change has the changeId {after}")


def _hand_over(info: Info, socket: SubscriptionSocket, change_filter: ChangeFilter) -> None:
    """Hand the subscription over to the group of subscribers that get the same responses
    (`service.graph.fanout`); the socket's handler delivers its events from then on."""
    schema = info.schema
    context = info.context

    async def execute(event: object) -> ExecutionResult:
        return await schema.execute(
            socket.query,
            variable_values=socket.variables,
            context_value=context,
            root_value=event,
            operation_name=socket.operation_name,
            allowed_operation_types=(OperationType.SUBSCRIPTION,),
        )

    async def key_holds() -> str | None:
        await context.recheck_key()
        if context.caller.principal is not None:
            return None
        return context.caller.refusal or "the API key is no longer valid"

    hub = context.events.hub
    member = GroupMember(socket, execute, key_holds, hub.backlog)
    # What the response depends on besides the change: the operation, its variables (the
    # filter is among them) and the rows the caller may see.
    key = (
        socket.query,
        socket.operation_name,
        # The declared variables as coerced (undeclared ones cannot change the response).
        json.dumps(info.variable_values, sort_keys=True, default=repr),
        change_filter.row_scope,
    )
    join_group(hub, key, change_filter, CallbackStatusChange.of, member)
    socket.member = member
