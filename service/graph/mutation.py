"""Mutations: callback events fed in, each applied by POM's rules in one transaction."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from service.callbacks import reference_data, rules
from service.callbacks.transactions import Outcome
from service.clock import utc_now
from service.db.models.callback import CallbackType, SystemCompletionCode
from service.db.models.campaign import CampaignType
from service.errors import BadUserInputError
from service.events.change_log import ChangeOrigin
from service.graph.context import Info
from service.graph.nodes import AgentNode, CallbackNode, CampaignNode, ContactNode, JobNode

ResultT = TypeVar("ResultT")


mutation_log = logging.getLogger("service.mutations")


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


@strawberry.input(
    description="A contact to create or update. Its phone number goes in `phone` or in "
    "`phoneNumber`, one field under two names (the second is the one `Contact` uses): give "
    "exactly one of them, or both with the same value."
)
class ContactInput:
    contact_id: str
    first_name: str
    last_name: str
    phone: str | None = strawberry.field(
        default=None,
        description="The contact's phone number; the same field as phoneNumber. Give one of "
        "the two (both only with the same value).",
    )
    phone_number: str | None = strawberry.field(
        default=None,
        description="The contact's phone number, named as Contact.phoneNumber; the same field "
        "as phone. Give one of the two (both only with the same value).",
    )
    alternate_phone: str | None = None
    email: str | None = None
    time_zone: str = strawberry.field(description="IANA time zone, e.g. America/Chicago.")


@strawberry.input(description="A job of a running campaign.")
class StartJobInput:
    job_id: int
    campaign_name: str
    start_time: dt.datetime | None = strawberry.field(default=None, description="Default: now.")


@strawberry.input(
    description="A callback an agent scheduled: now (creationTime omitted), or earlier and fed "
    "in after the fact (creationTime given)."
)
class ScheduleCallbackInput:
    callback_id: str | None = strawberry.field(default=None, description="Generated when absent.")
    callback_type: CallbackType
    job_id: int = strawberry.field(
        description="The job of a running campaign it was scheduled in; a job COMPLETED at "
        "creationTime takes none (CONFLICT)."
    )
    creator_agent_id: str
    created_for_agent_id: str | None = strawberry.field(
        default=None, description="Required for AGENT and STRICT_AGENT; not allowed otherwise."
    )
    contact_id: str
    call_id: str = strawberry.field(
        description="The call it was scheduled on; a later callback on the same call by the "
        "same agent for the same contact overwrites it."
    )
    creation_time: dt.datetime | None = strawberry.field(
        default=None,
        description="Default: now. Give it to feed in a callback scheduled earlier (replaying "
        "history): its scheduledEndTime may then lie in the past, but must be after this time.",
    )
    scheduled_start_time: dt.datetime
    scheduled_end_time: dt.datetime = strawberry.field(
        description="When it expires: not before scheduledStartTime, and after creationTime, "
        "so in the future when creationTime is omitted; a callback is never born expired "
        "(BAD_USER_INPUT)."
    )


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

    @classmethod
    def of(cls, outcome: Outcome[None]) -> StatusChangeResult:
        """The result of an operation that changes many callbacks at once."""
        return cls(changed_count=len(outcome.changes))


async def _apply(
    info: Info,
    operation: Callable[..., Awaitable[Outcome[ResultT]]],
    arguments: Callable[[dt.datetime], dict[str, Any]],
) -> Outcome[ResultT]:
    """Run one operation of the callback rules or reference data in its own transaction, with
    the `arguments` made for the current time: a transaction run again (after a deadlock)
    works at the time it runs, as if it came then."""

    async def attempt(session: AsyncSession) -> Outcome[ResultT]:
        return await operation(session, **arguments(utc_now()))

    principal = info.context.principal
    origin = ChangeOrigin(info.field_name, principal.key_id if principal else None)
    outcome = await info.context.transactions.run(attempt, origin)
    _log_mutation(info, outcome)
    return outcome


# Status changes a mutation's log line lists; the count is always there.
_LOGGED_CHANGES = 100


def _log_mutation(info: Info, outcome: Outcome[Any]) -> None:
    """One line per committed mutation: which, by whose key, and the status changes it made
    (never the key, nor the mutation's arguments)."""
    principal = info.context.principal
    changes = [
        {
            "callback_id": change.callback_id,
            "previous_status": change.previous_status.value if change.previous_status else None,
            "status": change.status.value,
        }
        for change in outcome.changes[:_LOGGED_CHANGES]
    ]
    mutation_log.info(
        "%s by key %s (%s): %d status changes",
        info.field_name,
        principal.key_id if principal else None,
        principal.role.value if principal else None,
        len(outcome.changes),
        extra={
            "mutation": info.field_name,
            "key_id": principal.key_id if principal else None,
            "role": principal.role.value if principal else None,
            "status_changes": changes,
            "status_change_count": len(outcome.changes),
        },
    )


def _contact_phone_number(input: ContactInput) -> str:
    """The phone number of a `ContactInput`, under whichever of its two names it came."""
    given = {
        name: value
        for name, value in (("phoneNumber", input.phone_number), ("phone", input.phone))
        if value is not None
    }
    if not given:
        raise BadUserInputError("give the contact's phone number as phoneNumber (or phone)")
    if len(set(given.values())) > 1:
        # The values stay out of the message: a phone number is personal data, and errors
        # may be logged.
        raise BadUserInputError(
            "phone and phoneNumber are one field under two names, and the two values differ; "
            "give one of them (phoneNumber is the name Contact uses)"
        )
    name, value = next(iter(given.items()))
    reference_data.require_text(**{name: value})
    return value


def _utc(value: dt.datetime) -> dt.datetime:
    # Times without an offset are UTC (SPEC 3).
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _utc_or_now(value: dt.datetime | None, now: dt.datetime) -> dt.datetime:
    return _utc(value) if value is not None else now


@strawberry.type(description="Feed callback events in; each applies SPEC 2.3 in one transaction.")
class Mutation:
    @strawberry.mutation(description="Create a campaign, or update one with the same name.")
    async def upsert_campaign(self, info: Info, input: CampaignInput) -> CampaignNode:
        outcome = await _apply(
            info,
            reference_data.upsert_campaign,
            lambda _now: dict(
                name=input.name,
                campaign_type=input.campaign_type,
                strategy_name=input.strategy,
                max_attempts=input.max_attempts,
            ),
        )
        return CampaignNode.from_row(outcome.result)

    @strawberry.mutation(description="Create an agent, or rename one.")
    async def upsert_agent(self, info: Info, input: AgentInput) -> AgentNode:
        outcome = await _apply(
            info,
            reference_data.upsert_agent,
            lambda _now: dict(agent_id=input.agent_id, name=input.name),
        )
        return AgentNode.from_row(outcome.result)

    @strawberry.mutation(description="Create a contact, or update one.")
    async def upsert_contact(self, info: Info, input: ContactInput) -> ContactNode:
        phone_number = _contact_phone_number(input)
        outcome = await _apply(
            info,
            reference_data.upsert_contact,
            lambda _now: dict(
                contact_id=input.contact_id,
                first_name=input.first_name,
                last_name=input.last_name,
                phone_number=phone_number,
                alternate_phone_number=input.alternate_phone,
                email=input.email,
                time_zone=input.time_zone,
            ),
        )
        return ContactNode.from_row(outcome.result)

    @strawberry.mutation(description="Record a job of a running campaign.")
    async def start_job(self, info: Info, input: StartJobInput) -> JobNode:
        outcome = await _apply(
            info,
            reference_data.start_job,
            lambda now: dict(
                job_id=input.job_id,
                campaign_name=input.campaign_name,
                started_at=_utc_or_now(input.start_time, now),
            ),
        )
        return JobNode.from_row(outcome.result)

    @strawberry.mutation(
        description="Schedule a callback; earlier ACTIVE ones of the same agent, contact and "
        "call become OVERWRITTEN."
    )
    async def schedule_callback(self, info: Info, input: ScheduleCallbackInput) -> CallbackNode:
        outcome = await _apply(
            info,
            rules.schedule_callback,
            lambda now: dict(
                callback_id=input.callback_id,
                callback_type=input.callback_type,
                job_id=input.job_id,
                creator_agent_id=input.creator_agent_id,
                created_for_agent_id=input.created_for_agent_id,
                contact_id=input.contact_id,
                call_id=input.call_id,
                created_at=None if input.creation_time is None else _utc(input.creation_time),
                scheduled_start_at=_utc(input.scheduled_start_time),
                scheduled_end_at=_utc(input.scheduled_end_time),
                now=now,
            ),
        )
        return CallbackNode.from_row(outcome.result)

    @strawberry.mutation(
        description="Record an attempt on an ACTIVE callback; completed: true completes it."
    )
    async def record_callback_attempt(
        self, info: Info, input: RecordCallbackAttemptInput
    ) -> CallbackNode:
        outcome = await _apply(
            info,
            rules.record_callback_attempt,
            lambda now: dict(
                callback_id=input.callback_id,
                attempted_at=_utc_or_now(input.attempt_time, now),
                agent_id=input.agent_id,
                custom_completion_code=input.custom_completion_code,
                system_completion_code=input.system_completion_code,
                dummy=input.dummy,
                completed=input.completed,
                now=now,
            ),
        )
        return CallbackNode.from_row(outcome.result)

    @strawberry.mutation(
        description="Move an ACTIVE callback's schedule (records a CALLBACK_POSTPONED attempt)."
    )
    async def postpone_callback(self, info: Info, input: PostponeCallbackInput) -> CallbackNode:
        outcome = await _apply(
            info,
            rules.postpone_callback,
            lambda now: dict(
                callback_id=input.callback_id,
                scheduled_start_at=_utc(input.scheduled_start_time),
                scheduled_end_at=_utc(input.scheduled_end_time),
                now=now,
            ),
        )
        return CallbackNode.from_row(outcome.result)

    @strawberry.mutation(
        description="Expire ACTIVE callbacks whose scheduled end is at or before asOf "
        "(default now), each with a CALLBACK_EXPIRED dummy attempt."
    )
    async def expire_due_callbacks(
        self, info: Info, as_of: dt.datetime | None = None
    ) -> StatusChangeResult:
        outcome = await _apply(
            info,
            rules.expire_due_callbacks,
            lambda now: dict(as_of=_utc_or_now(as_of, now), now=now),
        )
        return StatusChangeResult.of(outcome)

    @strawberry.mutation(
        description="Terminate (or finish) a campaign: its ACTIVE callbacks become "
        "CAMPAIGN_TERMINATED at once."
    )
    async def terminate_campaign(
        self, info: Info, name: str, finished: bool = False
    ) -> StatusChangeResult:
        outcome = await _apply(
            info,
            rules.terminate_campaign,
            lambda now: dict(name=name, finished=finished, now=utc_now()),
        )
        return StatusChangeResult.of(outcome)

    @strawberry.mutation(
        description="Exclude a contact: its ACTIVE callbacks become CONTACT_EXCLUDED, each with "
        "a dummy attempt."
    )
    async def exclude_contact(self, info: Info, contact_id: str) -> StatusChangeResult:
        outcome = await _apply(
            info, rules.exclude_contact, lambda now: dict(contact_id=contact_id, now=now)
        )
        return StatusChangeResult.of(outcome)
