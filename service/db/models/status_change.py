"""The change log: every callback status change, written in the transaction that made it."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from service.db.base import Base, UtcDateTime, portable_enum
from service.db.models.callback import CallbackStatus


class StatusChangeEntry(Base):
    """One status change of one callback (SPEC 2.3), the transactional outbox the transports
    publish from and the callback's history.

    IDs follow commit order: writers take one lock right before they append (SQLite's writes
    are serial anyway), so a reader that saw an ID has seen every change before it, and a
    subscriber can resume after the last ID it received without a gap.
    """

    __tablename__ = "callback_status_change"
    __table_args__ = (
        Index(None, "callback_id", "id"),
        # What the relay still has to publish; a few rows at most, so a partial index.
        Index(
            "ix_callback_status_change_unpublished",
            "id",
            sqlite_where=text("published_at IS NULL"),
            postgresql_where=text("published_at IS NULL"),
        ),
        # AUTOINCREMENT: SQLite must never hand out an ID again after pruning emptied the log.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    # Not a foreign key: the history stays as written, whatever later becomes of the row.
    callback_id: Mapped[str] = mapped_column(String(64))
    previous_status: Mapped[CallbackStatus | None] = mapped_column(
        portable_enum(CallbackStatus, "previous_callback_status")
    )
    status: Mapped[CallbackStatus] = mapped_column(portable_enum(CallbackStatus, "callback_status"))
    changed_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    # Which mutation (or the expiry sweep) made the change, and with which API key.
    made_by: Mapped[str] = mapped_column(String(64))
    api_key_id: Mapped[int | None] = mapped_column(Integer)
    # When a transport took the change; NULL until then (the relay's to-do list).
    published_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
