"""The ORM base, the UTC time column type, and engine and session factories."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import DateTime, Enum, MetaData, event
from sqlalchemy.engine import URL, Dialect
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

# Named constraints let migrations drop and alter them the same way on every store.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Base of every ORM model; its metadata is what Alembic compares against."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UtcDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware instant, stored in UTC on every store.

    PostgreSQL keeps it as `timestamptz`; SQLite has no time zones, so the value is stored
    as naive UTC text and given back its UTC offset on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} has no time zone")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        assert isinstance(value, dt.datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def portable_enum(enum_class: type[enum.Enum], name: str) -> Enum:
    """Column type for an enum: VARCHAR plus a CHECK of its names, the same on both stores."""
    return Enum(enum_class, name=name, native_enum=False, create_constraint=True, length=24)


def sqlite_time_text(value: dt.datetime) -> str:
    """Render a UTC instant exactly as SQLAlchemy stores a datetime in SQLite."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def create_engine(
    url: URL, *, statement_timeout_ms: int | None = None, **options: Any
) -> AsyncEngine:
    """Create the async engine for a database URL, with per-store connection setup.

    On PostgreSQL, `statement_timeout_ms` makes the server cancel any longer statement, so one
    runaway query cannot hold a connection; SQLite has no such setting.
    """
    if url.get_backend_name() == "sqlite":
        engine = create_async_engine(url, connect_args={"timeout": 30}, **options)
        event.listen(engine.sync_engine, "connect", _configure_sqlite_connection)
        return engine
    connect_args: dict[str, Any] = {"timeout": 10}
    if statement_timeout_ms is not None:
        connect_args["server_settings"] = {"statement_timeout": str(statement_timeout_ms)}
    return create_async_engine(url, pool_pre_ping=True, connect_args=connect_args, **options)


def create_write_engine(url: URL, read_engine: AsyncEngine) -> AsyncEngine:
    """The engine mutations run on: on SQLite its own, whose transactions take the write lock
    at BEGIN; elsewhere the read engine itself.

    A deferred SQLite transaction that reads and then writes fails (SQLITE_BUSY) when another
    writer committed in between; BEGIN IMMEDIATE makes concurrent writers queue instead. Reads
    keep deferred transactions so they never wait for each other.
    """
    if url.get_backend_name() != "sqlite":
        return read_engine
    engine = create_engine(url)
    event.listen(engine.sync_engine, "connect", _leave_begin_to_sqlalchemy)
    event.listen(engine.sync_engine, "begin", _begin_immediate)
    return engine


def _leave_begin_to_sqlalchemy(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None


def _begin_immediate(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    # SQLite leaves foreign keys unenforced unless asked, per connection; WAL lets
    # readers work while a writer commits.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.close()


def create_session_maker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Create the session factory; objects stay readable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)
