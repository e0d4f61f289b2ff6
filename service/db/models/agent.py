"""The agent: a contact-centre agent who schedules and services callbacks."""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from service.db.base import Base


class Agent(Base):
    """An agent, identified by POM's agent ID."""

    __tablename__ = "agent"

    agent_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
