"""The campaign: an outbound campaign whose jobs dial contacts and whose agents call them."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import CheckConstraint, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from service.db.base import Base, UtcDateTime, portable_enum


class CampaignType(enum.Enum):
    """How a campaign ends: a finite one runs through its contact list, an infinite one waits."""

    FINITE = "FINITE"
    INFINITE = "INFINITE"


class CampaignState(enum.Enum):
    """Whether a campaign still runs; a terminated or finished campaign schedules nothing more."""

    RUNNING = "RUNNING"
    TERMINATED = "TERMINATED"
    FINISHED = "FINISHED"


class Campaign(Base):
    """An outbound campaign, known to POM by its unique name."""

    __tablename__ = "campaign"
    __table_args__ = (
        CheckConstraint("max_attempts >= 1", name="max_attempts_positive"),
        # A campaign has an end time exactly when it is no longer running.
        CheckConstraint(
            "(state = 'RUNNING' AND ended_at IS NULL)"
            " OR (state <> 'RUNNING' AND ended_at IS NOT NULL)",
            name="ended_at_matches_state",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    campaign_type: Mapped[CampaignType] = mapped_column(
        portable_enum(CampaignType, "campaign_type")
    )
    strategy_name: Mapped[str] = mapped_column(String(128))
    # How often a strict-agent callback goes to its assigned agent before others may take it.
    max_attempts: Mapped[int] = mapped_column(Integer)
    state: Mapped[CampaignState] = mapped_column(portable_enum(CampaignState, "campaign_state"))
    ended_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)

    @property
    def display_name(self) -> str:
        """The name as the report shows it, e.g. `[Finite][Sales_Strategy] Spring Renewals`."""
        return campaign_display_name(self.campaign_type, self.strategy_name, self.name)


def campaign_display_name(campaign_type: CampaignType, strategy_name: str, name: str) -> str:
    """Format a campaign's report name; the one format used everywhere a campaign is shown."""
    return f"[{campaign_type.value.title()}][{strategy_name}] {name}"
