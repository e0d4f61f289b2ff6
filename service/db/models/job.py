"""The job: one running session of an outbound campaign."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service.db.base import Base, UtcDateTime, portable_enum


class JobState(enum.Enum):
    """POM's job states; a job stays alive (CALLBACK states) while callbacks are pending."""

    QUEUED = "QUEUED"
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    STOPPED = "STOPPED"
    CALLBACK = "CALLBACK"
    STOPPED_CALLBACK = "STOPPED_CALLBACK"
    COMPLETED = "COMPLETED"


class Job(Base):
    """A campaign job, identified by POM's numeric job ID."""

    __tablename__ = "job"
    __table_args__ = (
        CheckConstraint("ended_at IS NULL OR ended_at >= started_at", name="ends_after_start"),
        # Lets a callback's (job, campaign) pair reference a job of that very campaign.
        UniqueConstraint("job_id", "campaign_id"),
        Index(None, "campaign_id", "started_at"),
    )

    job_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id"))
    started_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    state: Mapped[JobState] = mapped_column(portable_enum(JobState, "job_state"))
