"""Live status changes of callbacks, filtered on the server."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncGenerator

import strawberry

from service.callbacks.models import CallbackStatus
from service.context import Info
from service.errors import UnauthenticatedError
from service.events.hub import ChangeFilter
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
            row_scope=info.context.row_scope,
        )
        async with info.context.events.hub.subscribe(change_filter) as subscriber:
            async for change in subscriber.changes():
                # A key revoked while the subscription runs ends it at the next change.
                await info.context.check_principal_still_valid()
                if info.context.principal is None:
                    raise UnauthenticatedError("the API key is no longer valid")
                info.context.refresh_loaders()
                yield CallbackStatusChange(
                    callback=CallbackNode.from_row(change.callback),
                    previous_status=change.previous_status,
                    status=change.status,
                    changed_at=change.changed_at,
                )
