"""The engines' timeouts: a statement that runs too long is stopped on either store, and an
SQLite write that cannot get the write lock gives up after the busy timeout; both are errors
the service answers SERVICE_UNAVAILABLE."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from service.db.engines import create_engine, create_write_engine
from service.errors import is_database_busy, is_statement_timeout, masked_error

# A statement that keeps the database busy for seconds, on each store.
_SLOW = {
    "postgresql": "SELECT pg_sleep(5)",
    "sqlite": (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000000)"
        " SELECT count(*) FROM n"
    ),
}


async def test_a_statement_past_the_statement_timeout_is_stopped_on_either_store(
    empty_database_url: URL,
) -> None:
    engine = create_engine(empty_database_url, statement_timeout_ms=200)
    try:
        async with engine.connect() as connection:
            started = time.monotonic()
            with pytest.raises(DBAPIError) as raised:
                await connection.execute(text(_SLOW[empty_database_url.get_backend_name()]))
            assert 0.2 <= time.monotonic() - started < 2
            await connection.rollback()
            # The connection stays usable: only that statement was stopped.
            assert (await connection.execute(text("SELECT 1"))).scalar() == 1
    finally:
        await engine.dispose()
    assert is_statement_timeout(raised.value)
    assert not is_database_busy(raised.value)
    message, extensions = masked_error(raised.value)
    assert extensions == {"code": "SERVICE_UNAVAILABLE"}
    assert "SELECT" not in message


async def test_the_statement_timeout_bounds_each_statement_not_the_transaction(
    empty_database_url: URL,
) -> None:
    # The write engine: BEGIN IMMEDIATE on SQLite, the read engine itself elsewhere.
    read_engine = create_engine(empty_database_url, statement_timeout_ms=200)
    engine = create_write_engine(empty_database_url, read_engine, statement_timeout_ms=200)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE t (n INTEGER)"))
            for n in range(3):
                # Idle time between statements, and the commit after it, count for nothing.
                await asyncio.sleep(0.15)
                await connection.execute(text("INSERT INTO t VALUES (:n)"), {"n": n})
            await asyncio.sleep(0.25)
        async with engine.connect() as connection:
            assert (await connection.execute(text("SELECT count(*) FROM t"))).scalar() == 3
    finally:
        if engine is not read_engine:
            await engine.dispose()
        await read_engine.dispose()


async def test_a_write_lock_held_past_the_busy_timeout_is_a_busy_error(tmp_path: object) -> None:
    path = f"{tmp_path}/busy.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA journal_mode = WAL")
    holder.execute("CREATE TABLE t (n INTEGER)")
    url = URL.create("sqlite+aiosqlite", database=path)
    read_engine = create_engine(url, sqlite_busy_timeout_ms=300)
    engine = create_write_engine(url, read_engine, sqlite_busy_timeout_ms=300)
    holder.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        with pytest.raises(DBAPIError) as raised:
            async with engine.begin() as connection:
                await connection.execute(text("INSERT INTO t VALUES (1)"))
        waited = time.monotonic() - started
        # WAL: readers go on while the lock is held.
        async with read_engine.connect() as connection:
            assert (await connection.execute(text("SELECT count(*) FROM t"))).scalar() == 0
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        await engine.dispose()
        await read_engine.dispose()
    assert 0.3 <= waited < 2
    assert "database is locked" in str(raised.value)
    assert is_database_busy(raised.value)
    assert not is_statement_timeout(raised.value)
    assert masked_error(raised.value)[1] == {"code": "SERVICE_UNAVAILABLE"}
