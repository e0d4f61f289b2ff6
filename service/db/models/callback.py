"""The callback an agent schedules for a contact, and the attempts made on it."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from service.db.base import Base, UtcDateTime, portable_enum


class CallbackType(enum.Enum):
    """Who may service a callback (SPEC 2.2)."""

    AGENT = "AGENT"
    CAMPAIGN = "CAMPAIGN"
    STANDARD = "STANDARD"
    STRICT_AGENT = "STRICT_AGENT"


# Types created for an agent rather than for the campaign.
AGENT_CALLBACK_TYPES = frozenset({CallbackType.AGENT, CallbackType.STRICT_AGENT})


def created_for_agent(callback_type: CallbackType, created_for_agent_id: str | None) -> str | None:
    """The agent the report's Created For names (AGENT and STRICT_AGENT callbacks); None
    where it names the campaign."""
    if callback_type in AGENT_CALLBACK_TYPES and created_for_agent_id:
        return created_for_agent_id
    return None


def created_for(
    callback_type: CallbackType, created_for_agent_id: str | None, campaign_name: str
) -> str:
    """The report's Created For: the agent for AGENT and STRICT_AGENT callbacks, else the
    campaign."""
    return created_for_agent(callback_type, created_for_agent_id) or campaign_name


class CallbackStatus(enum.Enum):
    """Where a callback stands (SPEC 2.3); ACTIVE is the only status that can still change."""

    ACTIVE = "ACTIVE"
    COMPLETED = "COMPLETED"
    EXPIRED = "EXPIRED"
    CAMPAIGN_TERMINATED = "CAMPAIGN_TERMINATED"
    OVERWRITTEN = "OVERWRITTEN"
    CONTACT_EXCLUDED = "CONTACT_EXCLUDED"


class SystemCompletionCode(enum.Enum):
    """Dispositions the system sets, mostly on dummy attempts it records without dialling."""

    RESTRICTED_DNC = "RESTRICTED_DNC"
    RESTRICTED_OTHER = "RESTRICTED_OTHER"
    CALLBACK_EXPIRED = "CALLBACK_EXPIRED"
    CALLBACK_POSTPONED = "CALLBACK_POSTPONED"
    CONTACT_EXCLUDED = "CONTACT_EXCLUDED"


class Callback(Base):
    """A scheduled callback, identified by POM's callback ID.

    The latest attempt's agent, time and completion codes are kept on the row as well (the
    `serviced_by_agent_id` .. `system_completion_code` columns), written in the same
    transaction as the attempt, so the report can filter and sort on them without a join.
    """

    __tablename__ = "callback"
    __table_args__ = (
        CheckConstraint("scheduled_end_at >= scheduled_start_at", name="schedule_ends_after_start"),
        CheckConstraint(
            "(callback_type IN ('AGENT', 'STRICT_AGENT') AND created_for_agent_id IS NOT NULL)"
            " OR (callback_type IN ('CAMPAIGN', 'STANDARD') AND created_for_agent_id IS NULL)",
            name="created_for_agent_matches_type",
        ),
        CheckConstraint(
            "last_attempt_at IS NOT NULL OR (serviced_by_agent_id IS NULL"
            " AND custom_completion_code IS NULL AND system_completion_code IS NULL)",
            name="attempt_summary_needs_attempt",
        ),
        # The job must belong to the callback's campaign.
        ForeignKeyConstraint(["job_id", "campaign_id"], ["job.job_id", "job.campaign_id"]),
        # SPEC 2.3: at most one ACTIVE callback per (creator agent, contact, call).
        Index(
            "uq_callback_active_per_call",
            "creator_agent_id",
            "contact_id",
            "call_id",
            unique=True,
            sqlite_where=text("status = 'ACTIVE'"),
            postgresql_where=text("status = 'ACTIVE'"),
        ),
        # The report's access paths; callback_id is the order's tie-breaker.
        Index(None, "created_at", "callback_id"),
        Index(None, "creator_agent_id", "created_at", "callback_id"),
        Index(None, "campaign_id", "created_at", "callback_id"),
        Index(None, "job_id", "created_at", "callback_id"),
        Index(None, "contact_id", "created_at", "callback_id"),
        Index(None, "serviced_by_agent_id", "created_at", "callback_id"),
        # With the creator and serviced-by indexes, an agent key's scope is an index union.
        Index(None, "created_for_agent_id", "created_at", "callback_id"),
        # Filters by status, and the expiry sweep over ACTIVE callbacks by scheduled end.
        Index(None, "status", "scheduled_end_at"),
    )

    callback_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    callback_type: Mapped[CallbackType] = mapped_column(
        portable_enum(CallbackType, "callback_type")
    )
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id"))
    job_id: Mapped[int] = mapped_column(Integer)
    creator_agent_id: Mapped[str] = mapped_column(ForeignKey("agent.agent_id"))
    created_for_agent_id: Mapped[str | None] = mapped_column(ForeignKey("agent.agent_id"))
    contact_id: Mapped[str] = mapped_column(ForeignKey("contact.contact_id"))
    # The call the callback was scheduled on; several callbacks from one call overwrite each other.
    call_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    scheduled_start_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    scheduled_end_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    status: Mapped[CallbackStatus] = mapped_column(portable_enum(CallbackStatus, "callback_status"))
    serviced_by_agent_id: Mapped[str | None] = mapped_column(ForeignKey("agent.agent_id"))
    last_attempt_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    custom_completion_code: Mapped[str | None] = mapped_column(String(64))
    system_completion_code: Mapped[SystemCompletionCode | None] = mapped_column(
        portable_enum(SystemCompletionCode, "system_completion_code")
    )


class CallbackAttempt(Base):
    """One attempt on a callback: a real call, or a dummy attempt recorded without dialling."""

    __tablename__ = "callback_attempt"
    __table_args__ = (
        # The system always says why it recorded a dummy attempt.
        CheckConstraint(
            "NOT is_dummy OR system_completion_code IS NOT NULL", name="dummy_has_system_code"
        ),
        Index(None, "callback_id", "attempted_at"),
        Index(None, "agent_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    callback_id: Mapped[str] = mapped_column(ForeignKey("callback.callback_id"))
    attempted_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    agent_id: Mapped[str | None] = mapped_column(ForeignKey("agent.agent_id"))
    custom_completion_code: Mapped[str | None] = mapped_column(String(64))
    system_completion_code: Mapped[SystemCompletionCode | None] = mapped_column(
        portable_enum(SystemCompletionCode, "system_completion_code")
    )
    is_dummy: Mapped[bool] = mapped_column(Boolean)
