"""Mutations: callback events fed in, each applied by POM's rules in one transaction."""

from __future__ import annotations

import datetime as dt
from typing import Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from service.callbacks import lifecycle
from service.callbacks.models import CallbackType, SystemCompletionCode
from service.campaigns.models import CampaignType
from service.context import Info
from service.events.callback_events import utc_now
from service.graph.nodes import AgentNode, CallbackNode, CampaignNode, ContactNode, JobNode


def _utc(value: dt.datetime) -> dt.datetime:
    # Times without an offset are UTC (SPEC 3).
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


@strawberry.input(description="A campaign to create or update, by name.")
class CampaignInput:
    name: str
    campaign_type: CampaignType
    strategy: str = strawberry.field(description="Campaign strategy name.")
    max_attempts: int = strawberry.field(
        description="Attempts a strict-agent callback goes to its assigned agent first."
    )


@strawberry.input(description="An agent to create or rename.")
class AgentInput:
    agent_id: str
    name: str


@strawberry.input(description="A contact to create or update.")
class ContactInput:
    contact_id: str
    first_name: str
    last_name: str
    phone: str
    alternate_phone: str | None = None
    email: str | None = None
    time_zone: str = strawberry.field(description="IANA time zone, e.g. America/Chicago.")


@strawberry.input(description="A job of a running campaign.")
class StartJobInput:
    job_id: int
    campaign_name: str
    start_time: dt.datetime | None = strawberry.field(default=None, description="Default: now.")


@strawberry.input(description="A callback an agent scheduled.")
class ScheduleCallbackInput:
    callback_id: str | None = strawberry.field(default=None, description="Generated when absent.")
    callback_type: CallbackType
    job_id: int
    creator_agent_id: str
    created_for_agent_id: str | None = strawberry.field(
        default=None, description="Required for AGENT and STRICT_AGENT; not allowed otherwise."
    )
    contact_id: str
    call_id: str = strawberry.field(
        description="The call it was scheduled on; a later callback on the same call by the "
        "same agent for the same contact overwrites it."
    )
    creation_time: dt.datetime | None = strawberry.field(default=None, description="Default: now.")
    scheduled_start_time: dt.datetime
    scheduled_end_time: dt.datetime


@strawberry.input(description="An attempt on an ACTIVE callback.")
class RecordCallbackAttemptInput:
    callback_id: str
    attempt_time: dt.datetime | None = strawberry.field(default=None, description="Default: now.")
    agent_id: str | None = None
    custom_completion_code: str | None = None
    system_completion_code: SystemCompletionCode | None = strawberry.field(
        default=None, description="RESTRICTED_DNC or RESTRICTED_OTHER for a blocked attempt."
    )
    dummy: bool | None = strawberry.field(
        default=None, description="Recorded without dialling; default: true for restricted ones."
    )
    completed: bool = strawberry.field(
        default=False, description="The contact was served: the callback becomes COMPLETED."
    )


@strawberry.input(description="A new schedule for an ACTIVE callback.")
class PostponeCallbackInput:
    callback_id: str
    scheduled_start_time: dt.datetime
    scheduled_end_time: dt.datetime


@strawberry.type(description="How many callbacks changed status.")
class StatusChangeResult:
    changed_count: int


def _no_changes(value: Any) -> tuple[Any, list[lifecycle.StatusChange]]:
    return value, []


@strawberry.type(description="Feed callback events in; each applies SPEC 2.3 in one transaction.")
class Mutation:
    @strawberry.mutation(description="Create a campaign, or update one with the same name.")
    async def upsert_campaign(self, info: Info, input: CampaignInput) -> CampaignNode:
        async def run(session: AsyncSession) -> tuple[Any, list[lifecycle.StatusChange]]:
            return _no_changes(
                await lifecycle.upsert_campaign(
                    session,
                    name=input.name,
                    campaign_type=input.campaign_type,
                    strategy_name=input.strategy,
                    max_attempts=input.max_attempts,
                )
            )

        return CampaignNode.from_row(await _run(info, run))

    @strawberry.mutation(description="Create an agent, or rename one.")
    async def upsert_agent(self, info: Info, input: AgentInput) -> AgentNode:
        async def run(session: AsyncSession) -> tuple[Any, list[lifecycle.StatusChange]]:
            return _no_changes(
                await lifecycle.upsert_agent(session, agent_id=input.agent_id, name=input.name)
            )

        return AgentNode.from_row(await _run(info, run))

    @strawberry.mutation(description="Create a contact, or update one.")
    async def upsert_contact(self, info: Info, input: ContactInput) -> ContactNode:
        async def run(session: AsyncSession) -> tuple[Any, list[lifecycle.StatusChange]]:
            return _no_changes(
                await lifecycle.upsert_contact(
                    session,
                    contact_id=input.contact_id,
                    first_name=input.first_name,
                    last_name=input.last_name,
                    phone_number=input.phone,
                    alternate_phone_number=input.alternate_phone,
                    email=input.email,
                    time_zone=input.time_zone,
                )
            )

        return ContactNode.from_row(await _run(info, run))

    @strawberry.mutation(description="Record a job of a running campaign.")
    async def start_job(self, info: Info, input: StartJobInput) -> JobNode:
        async def run(session: AsyncSession) -> tuple[Any, list[lifecycle.StatusChange]]:
            return _no_changes(
                await lifecycle.start_job(
                    session,
                    job_id=input.job_id,
                    campaign_name=input.campaign_name,
                    started_at=_utc(input.start_time) if input.start_time else utc_now(),
                )
            )

        return JobNode.from_row(await _run(info, run))

    @strawberry.mutation(
        description="Schedule a callback; earlier ACTIVE ones of the same agent, contact and "
        "call become OVERWRITTEN."
    )
    async def schedule_callback(
        self,
        info: Info,
        input: ScheduleCallbackInput,
    ) -> CallbackNode:
        async def run(session: AsyncSession) -> tuple[Any, list[lifecycle.StatusChange]]:
            now = utc_now()
            return await lifecycle.schedule_callback(
                session,
                callback_id=input.callback_id,
                callback_type=input.callback_type,
                job_id=input.job_id,
                creator_agent_id=input.creator_agent_id,
                created_for_agent_id=input.created_for_agent_id,
                contact_id=input.contact_id,
                call_id=input.call_id,
                created_at=_utc(input.creation_time) if input.creation_time else now,
                scheduled_start_at=_utc(input.scheduled_start_time),
                scheduled_end_at=_utc(input.scheduled_end_time),
                now=now,
            )

        return CallbackNode.from_row(await _run(info, run))

    @strawberry.mutation(
        description="Record an attempt on an ACTIVE callback; completed: true completes it."
    )
    async def record_callback_attempt(
        self,
        info: Info,
        input: RecordCallbackAttemptInput,
    ) -> CallbackNode:
        async def run(session: AsyncSession) -> tuple[Any, list[lifecycle.StatusChange]]:
            now = utc_now()
            return await lifecycle.record_callback_attempt(
                session,
                callback_id=input.callback_id,
                attempted_at=_utc(input.attempt_time) if input.attempt_time else now,
                agent_id=input.agent_id,
                custom_completion_code=input.custom_completion_code,
                system_completion_code=input.system_completion_code,
                dummy=input.dummy,
                completed=input.completed,
                now=now,
            )

        return CallbackNode.from_row(await _run(info, run))

    @strawberry.mutation(
        description="Move an ACTIVE callback's schedule (records a CALLBACK_POSTPONED attempt)."
    )
    async def postpone_callback(
        self,
        info: Info,
        input: PostponeCallbackInput,
    ) -> CallbackNode:
        async def run(session: AsyncSession) -> tuple[Any, list[lifecycle.StatusChange]]:
            return _no_changes(
                await lifecycle.postpone_callback(
                    session,
                    callback_id=input.callback_id,
                    scheduled_start_at=_utc(input.scheduled_start_time),
                    scheduled_end_at=_utc(input.scheduled_end_time),
                    now=utc_now(),
                )
            )

        return CallbackNode.from_row(await _run(info, run))

    @strawberry.mutation(
        description="Expire ACTIVE callbacks whose scheduled end is at or before asOf "
        "(default now), each with a CALLBACK_EXPIRED dummy attempt."
    )
    async def expire_due_callbacks(
        self, info: Info, as_of: dt.datetime | None = None
    ) -> StatusChangeResult:
        async def run(session: AsyncSession) -> tuple[Any, list[lifecycle.StatusChange]]:
            now = utc_now()
            changes = await lifecycle.expire_due_callbacks(
                session, as_of=_utc(as_of) if as_of else now, now=now
            )
            return StatusChangeResult(changed_count=len(changes)), changes

        result: StatusChangeResult = await _run(info, run)
        return result

    @strawberry.mutation(
        description="Terminate (or finish) a campaign: its ACTIVE callbacks become "
        "CAMPAIGN_TERMINATED at once."
    )
    async def terminate_campaign(
        self, info: Info, name: str, finished: bool = False
    ) -> StatusChangeResult:
        async def run(session: AsyncSession) -> tuple[Any, list[lifecycle.StatusChange]]:
            changes = await lifecycle.terminate_campaign(
                session, name=name, finished=finished, now=utc_now()
            )
            return StatusChangeResult(changed_count=len(changes)), changes

        result: StatusChangeResult = await _run(info, run)
        return result

    @strawberry.mutation(
        description="Exclude a contact: its ACTIVE callbacks become CONTACT_EXCLUDED, each with "
        "a dummy attempt."
    )
    async def exclude_contact(self, info: Info, contact_id: str) -> StatusChangeResult:
        async def run(session: AsyncSession) -> tuple[Any, list[lifecycle.StatusChange]]:
            changes = await lifecycle.exclude_contact(session, contact_id=contact_id, now=utc_now())
            return StatusChangeResult(changed_count=len(changes)), changes

        result: StatusChangeResult = await _run(info, run)
        return result


async def _run(info: Info, operation: Any) -> Any:
    context = info.context
    return await context.events.run(context.write_session_maker, operation)
