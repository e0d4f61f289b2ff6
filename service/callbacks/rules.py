"""POM's callback rules (SPEC 2.3), each operation inside the caller's one transaction.

Every status change is a conditional UPDATE of ACTIVE rows (`... WHERE status = 'ACTIVE'`), so
two transactions racing for one callback can never both change it: the loser's UPDATE finds
the row no longer ACTIVE. Every operation returns an `Outcome`: its result and the status
changes it made, which the caller publishes once the transaction has committed.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, case, func, insert, literal, null, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from service.callbacks.reference_data import require_text
from service.callbacks.transactions import Outcome
from service.db.models.agent import Agent
from service.db.models.callback import (
    AGENT_CALLBACK_TYPES,
    Callback,
    CallbackAttempt,
    CallbackStatus,
    CallbackType,
    SystemCompletionCode,
)
from service.db.models.campaign import Campaign, CampaignState
from service.db.models.contact import Contact
from service.db.models.job import Job, JobState
from service.errors import BadUserInputError, ConflictError, NotFoundError
from service.events.changes import StatusChange

ACTIVE = CallbackStatus.ACTIVE
# Codes a client may record on an attempt; the others belong to their own operations.
_RECORDABLE_SYSTEM_CODES = {
    SystemCompletionCode.RESTRICTED_DNC,
    SystemCompletionCode.RESTRICTED_OTHER,
}


async def schedule_callback(
    session: AsyncSession,
    *,
    callback_id: str | None,
    callback_type: CallbackType,
    job_id: int,
    creator_agent_id: str,
    created_for_agent_id: str | None,
    contact_id: str,
    call_id: str,
    created_at: dt.datetime | None,
    scheduled_start_at: dt.datetime,
    scheduled_end_at: dt.datetime,
    now: dt.datetime,
) -> Outcome[Callback]:
    """Schedule a callback; earlier ACTIVE ones of the same agent, contact and call become
    OVERWRITTEN (or this one does, if a later one is already ACTIVE).

    `created_at` None means now. A callback is never born expired: its scheduled end is after
    its creation, so one created now ends in the future, while one fed in after the fact with
    its own (past) creation time may have ended since. Its job must have been alive then: a
    job COMPLETED before that time takes no callbacks.
    """
    if callback_type in AGENT_CALLBACK_TYPES and created_for_agent_id is None:
        raise BadUserInputError(
            f"createdForAgentId is required for {callback_type.value} callbacks"
        )
    if callback_type not in AGENT_CALLBACK_TYPES and created_for_agent_id is not None:
        raise BadUserInputError(
            f"createdForAgentId is only for AGENT and STRICT_AGENT callbacks, "
            f"not {callback_type.value}; the campaign is what a {callback_type.value} "
            "callback is created for"
        )
    if scheduled_end_at < scheduled_start_at:
        raise BadUserInputError("scheduledEndTime must not be before scheduledStartTime")
    if created_at is None:
        created_at = now
        if scheduled_end_at <= now:
            raise BadUserInputError(
                f"scheduledEndTime {scheduled_end_at.isoformat()} is not after now "
                f"({now.isoformat()}): the callback would be born expired. A callback fed in "
                "after the fact gives its creationTime; its end must be after that"
            )
    elif scheduled_end_at <= created_at:
        raise BadUserInputError(
            f"scheduledEndTime {scheduled_end_at.isoformat()} must be after creationTime "
            f"{created_at.isoformat()}: a callback is never born expired"
        )
    require_text(callId=call_id)
    job = await session.get(Job, job_id)
    if job is None:
        raise NotFoundError(f"job {job_id} does not exist; start it with startJob")
    campaign = await session.get_one(Campaign, job.campaign_id, with_for_update={"read": True})
    if campaign.state is not CampaignState.RUNNING:
        raise ConflictError(
            f"campaign {campaign.name!r} is {campaign.state.value}; it takes no new callbacks"
        )
    _check_job_alive(job, created_at)
    for role, agent_id in (
        ("creatorAgentId", creator_agent_id),
        ("createdForAgentId", created_for_agent_id),
    ):
        if agent_id is not None and await session.get(Agent, agent_id) is None:
            raise NotFoundError(f"{role}: agent {agent_id!r} does not exist")
    contact = await session.get(Contact, contact_id, with_for_update={"read": True})
    if contact is None:
        raise NotFoundError(f"contact {contact_id!r} does not exist")
    if contact.excluded_at is not None:
        raise ConflictError(f"contact {contact_id!r} is excluded; it takes no callbacks")
    if callback_id is None:
        callback_id = f"CB-{uuid.uuid4()}"
    elif await session.get(Callback, callback_id) is not None:
        raise ConflictError(f"callback {callback_id!r} already exists")

    await _serialize_per_call(session, creator_agent_id, contact_id, call_id)
    same_call = (
        (Callback.creator_agent_id == creator_agent_id)
        & (Callback.contact_id == contact_id)
        & (Callback.call_id == call_id)
        & (Callback.status == ACTIVE)
    )
    later = await session.scalar(
        select(func.count()).where(same_call, Callback.created_at > created_at)
    )
    changes: list[StatusChange] = []
    status = ACTIVE
    if later:
        # Fed out of order: a later callback of this call is already the ACTIVE one.
        status = CallbackStatus.OVERWRITTEN
    else:
        changes = await _change_status(session, same_call, CallbackStatus.OVERWRITTEN, now)
    callback = Callback(
        callback_id=callback_id,
        callback_type=callback_type,
        campaign_id=campaign.id,
        job_id=job_id,
        creator_agent_id=creator_agent_id,
        created_for_agent_id=created_for_agent_id,
        contact_id=contact_id,
        call_id=call_id,
        created_at=created_at,
        scheduled_start_at=scheduled_start_at,
        scheduled_end_at=scheduled_end_at,
        status=status,
    )
    session.add(callback)
    await session.flush()
    changes.append(StatusChange(callback_id, None, status, now))
    return Outcome(callback, changes)


async def record_callback_attempt(
    session: AsyncSession,
    *,
    callback_id: str,
    attempted_at: dt.datetime,
    agent_id: str | None,
    custom_completion_code: str | None,
    system_completion_code: SystemCompletionCode | None,
    dummy: bool | None,
    completed: bool,
    now: dt.datetime,
) -> Outcome[Callback]:
    """Record an attempt on an ACTIVE callback; `completed` makes it COMPLETED."""
    if (
        system_completion_code is not None
        and system_completion_code not in _RECORDABLE_SYSTEM_CODES
    ):
        raise BadUserInputError(
            f"systemCompletionCode {system_completion_code.value} is set by its own operation "
            "(expireDueCallbacks, excludeContact, postponeCallback)"
        )
    restricted = system_completion_code is not None
    if dummy is None:
        dummy = restricted
    if restricted and not dummy:
        raise BadUserInputError("a restricted attempt is a dummy attempt: nobody was dialled")
    if dummy and not restricted:
        raise BadUserInputError("a dummy attempt needs a systemCompletionCode saying why")
    if completed and (dummy or agent_id is None):
        raise BadUserInputError("completed needs a real attempt with the agentId who served it")
    callback = await _active_callback_for_update(session, callback_id)
    if attempted_at < callback.created_at:
        raise BadUserInputError(
            f"attemptTime {attempted_at.isoformat()} is before the callback's creationTime "
            f"{callback.created_at.isoformat()}"
        )
    if agent_id is not None:
        if await session.get(Agent, agent_id) is None:
            raise NotFoundError(f"agent {agent_id!r} does not exist")
        await _check_strict_agent(session, callback, agent_id)
    await _add_attempt(
        session,
        callback,
        CallbackAttempt(
            callback_id=callback_id,
            attempted_at=attempted_at,
            agent_id=agent_id,
            custom_completion_code=custom_completion_code,
            system_completion_code=system_completion_code,
            is_dummy=dummy,
        ),
    )
    changes: list[StatusChange] = []
    if completed:
        changes = await _change_status(
            session, Callback.callback_id == callback_id, CallbackStatus.COMPLETED, now
        )
        await session.refresh(callback)
    return Outcome(callback, changes)


async def postpone_callback(
    session: AsyncSession,
    *,
    callback_id: str,
    scheduled_start_at: dt.datetime,
    scheduled_end_at: dt.datetime,
    now: dt.datetime,
) -> Outcome[Callback]:
    """Move an ACTIVE callback's schedule, recording a CALLBACK_POSTPONED dummy attempt."""
    if scheduled_end_at < scheduled_start_at:
        raise BadUserInputError("scheduledEndTime must not be before scheduledStartTime")
    callback = await _active_callback_for_update(session, callback_id)
    callback.scheduled_start_at = scheduled_start_at
    callback.scheduled_end_at = scheduled_end_at
    await _add_attempt(
        session,
        callback,
        CallbackAttempt(
            callback_id=callback_id,
            attempted_at=now,
            system_completion_code=SystemCompletionCode.CALLBACK_POSTPONED,
            is_dummy=True,
        ),
    )
    return Outcome(callback)


async def expire_due_callbacks(
    session: AsyncSession, *, as_of: dt.datetime, now: dt.datetime
) -> Outcome[None]:
    """Expire every ACTIVE callback whose scheduled end is at or before `as_of`, each with a
    CALLBACK_EXPIRED dummy attempt at its scheduled end."""
    expired = await session.execute(
        update(Callback)
        .where(Callback.status == ACTIVE, Callback.scheduled_end_at <= as_of)
        .values(
            status=CallbackStatus.EXPIRED,
            **_dummy_attempt_summary(
                Callback.scheduled_end_at, SystemCompletionCode.CALLBACK_EXPIRED
            ),
        )
        .returning(Callback.callback_id, Callback.scheduled_end_at)
        .execution_options(synchronize_session=False)
    )
    rows = expired.all()
    await _insert_dummy_attempts(
        session,
        [(callback_id, end) for callback_id, end in rows],
        SystemCompletionCode.CALLBACK_EXPIRED,
    )
    return Outcome(
        None,
        [StatusChange(callback_id, ACTIVE, CallbackStatus.EXPIRED, now) for callback_id, _ in rows],
    )


async def terminate_campaign(
    session: AsyncSession, *, name: str, finished: bool, now: dt.datetime
) -> Outcome[None]:
    """End a running campaign; all its ACTIVE callbacks become CAMPAIGN_TERMINATED at once."""
    campaign = await session.scalar(select(Campaign).where(Campaign.name == name).with_for_update())
    if campaign is None:
        raise NotFoundError(f"campaign {name!r} does not exist")
    if campaign.state is not CampaignState.RUNNING:
        raise ConflictError(f"campaign {name!r} is already {campaign.state.value}")
    campaign.state = CampaignState.FINISHED if finished else CampaignState.TERMINATED
    campaign.ended_at = now
    await session.execute(
        update(Job)
        .where(Job.campaign_id == campaign.id, Job.ended_at.is_(None))
        # A job recorded with a start still ahead ends when it starts, never before.
        .values(
            state=JobState.COMPLETED,
            ended_at=case(
                (Job.started_at > now, Job.started_at), else_=literal(now, Job.ended_at.type)
            ),
        )
        .execution_options(synchronize_session=False)
    )
    await session.flush()
    changes = await _change_status(
        session, Callback.campaign_id == campaign.id, CallbackStatus.CAMPAIGN_TERMINATED, now
    )
    return Outcome(None, changes)


async def exclude_contact(
    session: AsyncSession, *, contact_id: str, now: dt.datetime
) -> Outcome[None]:
    """Put a contact on the exclusion list; its ACTIVE callbacks become CONTACT_EXCLUDED, each
    with a dummy attempt. Excluding an excluded contact changes nothing."""
    contact = await session.get(Contact, contact_id, with_for_update=True)
    if contact is None:
        raise NotFoundError(f"contact {contact_id!r} does not exist")
    if contact.excluded_at is not None:
        return Outcome(None)
    contact.excluded_at = now
    await session.flush()
    changes = await _change_status(
        session,
        Callback.contact_id == contact_id,
        CallbackStatus.CONTACT_EXCLUDED,
        now,
        summary=_dummy_attempt_summary(now, SystemCompletionCode.CONTACT_EXCLUDED),
    )
    await _insert_dummy_attempts(
        session,
        [(change.callback_id, now) for change in changes],
        SystemCompletionCode.CONTACT_EXCLUDED,
    )
    return Outcome(None, changes)


# Shared steps -----------------------------------------------------------------------------


async def _change_status(
    session: AsyncSession,
    which: ColumnElement[bool],
    status: CallbackStatus,
    now: dt.datetime,
    *,
    summary: dict[str, Any] | None = None,
) -> list[StatusChange]:
    """Move the ACTIVE callbacks matching `which` to `status` in one statement."""
    changed = await session.execute(
        update(Callback)
        .where(which, Callback.status == ACTIVE)
        .values(status=status, **(summary or {}))
        .returning(Callback.callback_id)
        .execution_options(synchronize_session=False)
    )
    return [StatusChange(callback_id, ACTIVE, status, now) for (callback_id,) in changed]


async def _insert_dummy_attempts(
    session: AsyncSession,
    attempts: Sequence[tuple[str, dt.datetime]],
    code: SystemCompletionCode,
) -> None:
    if not attempts:
        return
    await session.execute(
        insert(CallbackAttempt),
        [
            {
                "callback_id": callback_id,
                "attempted_at": attempted_at,
                "agent_id": None,
                "custom_completion_code": None,
                "system_completion_code": code,
                "is_dummy": True,
            }
            for callback_id, attempted_at in attempts
        ],
    )


def _check_job_alive(job: Job, created_at: dt.datetime) -> None:
    """Refuse a callback created when its job had completed. A job stays alive (in its
    CALLBACK states, say) while callbacks are pending; a COMPLETED one has ended for good. A
    callback created before the job's end and fed in later is history, and stands."""
    if job.state is not JobState.COMPLETED:
        return
    if job.ended_at is None:
        raise ConflictError(f"job {job.job_id} is COMPLETED; it takes no new callbacks")
    if created_at >= job.ended_at:
        raise ConflictError(
            f"job {job.job_id} is COMPLETED since {job.ended_at.isoformat()}; a callback created "
            f"at {created_at.isoformat()} cannot belong to it"
        )


async def _active_callback_for_update(session: AsyncSession, callback_id: str) -> Callback:
    callback = await session.get(
        Callback, callback_id, with_for_update=True, populate_existing=True
    )
    if callback is None:
        raise NotFoundError(f"callback {callback_id!r} does not exist")
    if callback.status is not ACTIVE:
        raise ConflictError(
            f"callback {callback_id!r} is {callback.status.value}, a terminal status; "
            "it never changes again"
        )
    return callback


async def _check_strict_agent(session: AsyncSession, callback: Callback, agent_id: str) -> None:
    """A strict-agent callback goes to its assigned agent until the campaign's maximum
    attempts to that agent are used up; only then may another agent take it."""
    assigned = callback.created_for_agent_id
    if callback.callback_type is not CallbackType.STRICT_AGENT or agent_id == assigned:
        return
    campaign = await session.get_one(Campaign, callback.campaign_id)
    made = await session.scalar(
        select(func.count()).where(
            CallbackAttempt.callback_id == callback.callback_id,
            CallbackAttempt.agent_id == assigned,
            CallbackAttempt.is_dummy.is_(False),
        )
    )
    if (made or 0) < campaign.max_attempts:
        raise ConflictError(
            f"strict-agent callback {callback.callback_id!r} belongs to agent {assigned!r} "
            f"until {campaign.max_attempts} attempts to that agent ({made} so far)"
        )


def _dummy_attempt_summary(
    attempted_at: Any, code: SystemCompletionCode
) -> dict[str, ColumnElement[Any]]:
    """SET clauses recording a dummy attempt as the latest one, unless a later attempt is
    already recorded (an agent's call logged after the scheduled end, say)."""
    if isinstance(attempted_at, dt.datetime):
        attempted_at = literal(attempted_at, Callback.last_attempt_at.type)
    is_latest = or_(Callback.last_attempt_at.is_(None), Callback.last_attempt_at <= attempted_at)

    def latest_or_kept(value: Any, column: Any) -> ColumnElement[Any]:
        return case((is_latest, value), else_=column)

    return {
        "serviced_by_agent_id": latest_or_kept(null(), Callback.serviced_by_agent_id),
        "last_attempt_at": latest_or_kept(attempted_at, Callback.last_attempt_at),
        "custom_completion_code": latest_or_kept(null(), Callback.custom_completion_code),
        "system_completion_code": latest_or_kept(
            literal(code.name, Callback.system_completion_code.type),
            Callback.system_completion_code,
        ),
    }


async def _add_attempt(session: AsyncSession, callback: Callback, attempt: CallbackAttempt) -> None:
    """Record an attempt, keeping the report's latest-attempt columns in step (an attempt older
    than the latest one changes nothing there)."""
    session.add(attempt)
    if callback.last_attempt_at is None or attempt.attempted_at >= callback.last_attempt_at:
        callback.last_attempt_at = attempt.attempted_at
        callback.serviced_by_agent_id = attempt.agent_id
        callback.custom_completion_code = attempt.custom_completion_code
        callback.system_completion_code = attempt.system_completion_code
    await session.flush()


async def _serialize_per_call(
    session: AsyncSession, creator_agent_id: str, contact_id: str, call_id: str
) -> None:
    """Make concurrent schedules on one (agent, contact, call) take turns, so each sees the
    one before it and exactly one stays ACTIVE. SQLite's write transactions already do."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": f"callback-call\x1f{creator_agent_id}\x1f{contact_id}\x1f{call_id}"},
        )
