"""The contact: a person a campaign calls, possibly excluded from further calls."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ColumnElement, String
from sqlalchemy.orm import Mapped, mapped_column

from service.db.base import Base, UtcDateTime


class Contact(Base):
    """A contact, identified by POM's contact ID."""

    __tablename__ = "contact"

    contact_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    first_name: Mapped[str] = mapped_column(String(128))
    last_name: Mapped[str] = mapped_column(String(128))
    phone_number: Mapped[str] = mapped_column(String(32))
    alternate_phone_number: Mapped[str | None] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(254))
    # IANA name of the contact's own zone, e.g. America/Chicago.
    time_zone: Mapped[str] = mapped_column(String(64))
    # Set when the contact joined the exclusion list; the contact is excluded exactly when set.
    excluded_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)

    @property
    def is_excluded(self) -> bool:
        """Whether the contact is on the exclusion list."""
        return contact_excluded(self.excluded_at)

    @classmethod
    def excluded_expression(cls) -> ColumnElement[bool]:
        """`is_excluded` in SQL, for filters."""
        return cls.excluded_at.is_not(None)


def contact_excluded(excluded_at: dt.datetime | None) -> bool:
    """Whether a contact with this exclusion time is on the exclusion list: exactly when set."""
    return excluded_at is not None
