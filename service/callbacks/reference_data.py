"""The reference data callbacks point at: campaigns, agents and contacts created or updated by
their natural key, and jobs started. Each operation runs inside the caller's one transaction
and changes no callback's status."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from service.callbacks.transactions import Outcome
from service.db.models.agent import Agent
from service.db.models.campaign import Campaign, CampaignState, CampaignType
from service.db.models.contact import Contact
from service.db.models.job import Job, JobState
from service.errors import BadUserInputError, ConflictError, NotFoundError


async def _upsert(
    session: AsyncSession,
    model: type[Any],
    values: dict[str, Any],
    key: str,
    *,
    insert_only: dict[str, Any] | None = None,
) -> Any:
    """Insert a row or update the existing one with the same key, atomically; `insert_only`
    values go into a new row but never overwrite an existing one."""
    dialect_insert = (
        postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    )
    statement = dialect_insert(model).values(**values, **(insert_only or {}))
    statement = statement.on_conflict_do_update(
        index_elements=[key], set_={name: value for name, value in values.items() if name != key}
    )
    row = await session.scalar(
        statement.returning(model), execution_options={"populate_existing": True}
    )
    return row


async def upsert_campaign(
    session: AsyncSession,
    *,
    name: str,
    campaign_type: CampaignType,
    strategy_name: str,
    max_attempts: int,
) -> Outcome[Campaign]:
    """Create a running campaign, or update an existing one's attributes (not its state)."""
    if max_attempts < 1:
        raise BadUserInputError(f"maxAttempts must be at least 1, got {max_attempts}")
    require_text(name=name, strategy=strategy_name)
    values = {
        "name": name,
        "campaign_type": campaign_type,
        "strategy_name": strategy_name,
        "max_attempts": max_attempts,
    }
    campaign: Campaign = await _upsert(
        session, Campaign, values, "name", insert_only={"state": CampaignState.RUNNING}
    )
    return Outcome(campaign)


async def upsert_agent(session: AsyncSession, *, agent_id: str, name: str) -> Outcome[Agent]:
    """Create an agent or rename an existing one."""
    require_text(agentId=agent_id, name=name)
    agent: Agent = await _upsert(session, Agent, {"agent_id": agent_id, "name": name}, "agent_id")
    return Outcome(agent)


async def upsert_contact(
    session: AsyncSession,
    *,
    contact_id: str,
    first_name: str,
    last_name: str,
    phone_number: str,
    alternate_phone_number: str | None,
    email: str | None,
    time_zone: str,
) -> Outcome[Contact]:
    """Create a contact or update an existing one's details (not its exclusion)."""
    require_text(contactId=contact_id, phone=phone_number)
    try:
        zoneinfo.ZoneInfo(time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise BadUserInputError(
            f"timeZone must be an IANA time zone such as Europe/Berlin, got {time_zone!r}"
        ) from None
    values = {
        "contact_id": contact_id,
        "first_name": first_name,
        "last_name": last_name,
        "phone_number": phone_number,
        "alternate_phone_number": alternate_phone_number,
        "email": email,
        "time_zone": time_zone,
    }
    contact: Contact = await _upsert(session, Contact, values, "contact_id")
    return Outcome(contact)


async def start_job(
    session: AsyncSession, *, job_id: int, campaign_name: str, started_at: dt.datetime
) -> Outcome[Job]:
    """Record a job of a running campaign; starting the same job again returns it."""
    campaign = await campaign_for_share(session, campaign_name)
    existing = await session.get(Job, job_id)
    if existing is not None:
        if existing.campaign_id != campaign.id:
            raise ConflictError(f"job {job_id} already belongs to another campaign")
        return Outcome(existing)
    if campaign.state is not CampaignState.RUNNING:
        raise ConflictError(
            f"campaign {campaign_name!r} is {campaign.state.value}; it runs no jobs"
        )
    job = Job(job_id=job_id, campaign_id=campaign.id, started_at=started_at, state=JobState.ACTIVE)
    session.add(job)
    await session.flush()
    return Outcome(job)


async def campaign_for_share(session: AsyncSession, name: str) -> Campaign:
    """The campaign of that name, locked against termination until the transaction ends."""
    campaign = await session.scalar(
        select(Campaign).where(Campaign.name == name).with_for_update(read=True)
    )
    if campaign is None:
        raise NotFoundError(f"campaign {name!r} does not exist")
    return campaign


def require_text(**values: str) -> None:
    """Refuse empty or blank text arguments, naming them as the API does."""
    for name, value in values.items():
        if not value.strip():
            raise BadUserInputError(f"{name} must not be empty")
