"""Live status changes of callbacks, filtered on the server."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncGenerator
from typing import Any, cast

import strawberry

from service.db.models.callback import CallbackStatus
from service.events.hub import ChangeFilter, DeliveredChange
from service.graph.context import Info
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
    # The responses executed for this change, by what they depend on (operation, variables,
    # row scope): every subscriber of the change gets this one object, so those that would
    # get the same response share one execution (SubscriptionEventExecutionContext).
    shared_results: strawberry.Private[dict[Any, Any]]

    @classmethod
    def of(cls, change: DeliveredChange) -> CallbackStatusChange:
        """The change's one event object, made by its first subscriber."""
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
        async with info.context.events.hub.subscribe(change_filter) as subscriber:
            async for change in subscriber.changes():
                # A key revoked while the subscription runs ends it at the next change.
                await info.context.recheck_key()
                info.context.caller.require()
                info.context.refresh_loaders()
                yield CallbackStatusChange.of(change)
