"""API keys: who may call the service, in which role, and (for agents) as which agent."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import CheckConstraint, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from service.db.base import Base, UtcDateTime, portable_enum


class Role(enum.Enum):
    """What a key may do (SPEC 4)."""

    VIEWER = "viewer"  # every query and subscription
    AGENT = "agent"  # queries and subscriptions, over the agent's own callbacks only
    OPERATOR = "operator"  # viewer, plus every mutation
    ADMIN = "admin"  # everything

    @property
    def may_mutate(self) -> bool:
        """Whether the role may run mutations."""
        return self in (Role.OPERATOR, Role.ADMIN)


class ApiKey(Base):
    """A key a client sends as `Authorization: Bearer <key>`; only its SHA-256 is stored.

    Keys are 256 random bits, so a fast hash is enough: there is nothing to guess that a
    slow password hash would protect, and a lookup stays one indexed equality.
    """

    __tablename__ = "api_key"
    __table_args__ = (
        CheckConstraint(
            "(role = 'AGENT') = (agent_id IS NOT NULL)", name="agent_id_only_for_agent_role"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    role: Mapped[Role] = mapped_column(portable_enum(Role, "api_key_role"))
    # Not a foreign key: a key may be issued before POM first reports the agent.
    agent_id: Mapped[str | None] = mapped_column(String(64))
    key_prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    # When the key stops working; None: never. Rotation sets it to the end of the grace.
    expires_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    # When a request last used the key, to the minute: written at most once a minute per key
    # (`service.auth.key_usage`), never on a request's own path. None: never used.
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
