"""Automatic persisted queries: documents clients registered under their SHA-256 hash."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from service.db.base import Base, UtcDateTime


class PersistedQuery(Base):
    """One GraphQL document, under the hex SHA-256 of its text (Apollo's APQ protocol).

    A table rather than process memory, so that every instance over the same database knows a
    document any of them was sent; rows are immutable (the key is the content's hash)."""

    __tablename__ = "persisted_query"

    sha256_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    document: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
