"""Live status changes of callbacks, filtered on the server."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncGenerator
from typing import Any, cast

import strawberry
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from service.db.models.callback import CallbackStatus
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
                callback=CallbackNode.from_row(change.callback),
                previous_status=change.previous_status,
                status=change.status,
                changed_at=change.changed_at,
                shared_results={},
            )
        return cast(CallbackStatusChange, event)


@strawberry.type(description="Live updates.")
class Subscription:
    @strawberry.subscription(
        description="Every status change of a callback, after its transaction commits."
    )
    async def callback_status_changed(
        self,
        info: Info,
        filter: CallbackStatusChangedFilter | None = None,
    ) -> AsyncGenerator[CallbackStatusChange, None]:
        wanted = filter or CallbackStatusChangedFilter()
        change_filter = ChangeFilter(
            campaign_names=frozenset(wanted.campaign_names) if wanted.campaign_names else None,
            creator_agent_id=wanted.creator_agent_id,
            contact_id=wanted.contact_id,
            statuses=frozenset(wanted.statuses) if wanted.statuses else None,
            row_scope=info.context.caller.require("this operation needs an API key").row_scope,
        )
        socket = SUBSCRIPTION_SOCKET.get()
        if socket is not None and info.context.settings.compiled_execution:
            _hand_over(info, socket, change_filter)
            return  # the socket's handler delivers the events from here on
        async with info.context.events.hub.subscribe(change_filter) as subscriber:
            async for change in subscriber.changes():
                # A key revoked or expired while the subscription runs ends it at the next
                # change.
                await info.context.recheck_key()
                info.context.caller.require()
                info.context.refresh_loaders()
                yield CallbackStatusChange.of(change)


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
