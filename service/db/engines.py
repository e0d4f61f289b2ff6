"""Engines and session makers for either store, with each store's connection setup."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from service.settings import DEFAULT_SQLITE_BUSY_TIMEOUT_MS


def create_engine(
    url: URL,
    *,
    statement_timeout_ms: int | None = None,
    sqlite_busy_timeout_ms: int = DEFAULT_SQLITE_BUSY_TIMEOUT_MS,
    pool_size: int | None = None,
    pool_timeout_seconds: float | None = None,
    application_name: str = "pomreport",
    connect_timeout_seconds: float = 10,
    **options: Any,
) -> AsyncEngine:
    """Create the async engine for a database URL, with per-store connection setup.

    `statement_timeout_ms` cancels any longer statement, so one runaway query cannot hold a
    connection: PostgreSQL's server does it (`statement_timeout`), on SQLite a progress handler
    interrupts the statement. On SQLite a statement waits at most `sqlite_busy_timeout_ms` for
    another connection's write lock. `pool_size` caps the connections (no overflow beyond it),
    and a checkout waits at most `pool_timeout_seconds`. Connections are not pinged at
    checkout: a connection found dead fails its request once and the pool then replaces every
    connection as old as it. On PostgreSQL, `application_name` names the connections in
    `pg_stat_activity` and the server's log, and a connection attempt gives up after
    `connect_timeout_seconds`.
    """
    if pool_size is not None:
        options.update(pool_size=pool_size, max_overflow=0)
    if pool_timeout_seconds is not None:
        options["pool_timeout"] = pool_timeout_seconds
    if url.get_backend_name() == "sqlite":
        # sqlite3's `timeout` is SQLite's busy timeout, in seconds.
        busy_timeout = {"timeout": sqlite_busy_timeout_ms / 1000}
        engine = create_async_engine(url, connect_args=busy_timeout, **options)
        event.listen(engine.sync_engine, "connect", _configure_sqlite_connection)
        if statement_timeout_ms is not None:
            SqliteStatementTimeout(statement_timeout_ms / 1000).install(engine)
        return engine
    # Every statement planned for its own parameters: asyncpg prepares statements, and after
    # five runs PostgreSQL may switch them to a generic plan, which costs a period's count its
    # parallel index-only scan (30 days: 29 ms generic, 22 ms custom; planning takes 0.2 ms).
    # DateStyle ISO whatever the server's default: the CSV export reads times as text.
    server_settings = {
        "plan_cache_mode": "force_custom_plan",
        "DateStyle": "ISO",
        "application_name": application_name,
    }
    if statement_timeout_ms is not None:
        server_settings["statement_timeout"] = str(statement_timeout_ms)
    connect_args: dict[str, Any] = {
        "timeout": connect_timeout_seconds,
        "server_settings": server_settings,
    }
    return create_async_engine(url, connect_args=connect_args, **options)


def create_write_engine(
    url: URL,
    read_engine: AsyncEngine,
    *,
    statement_timeout_ms: int | None = None,
    sqlite_busy_timeout_ms: int = DEFAULT_SQLITE_BUSY_TIMEOUT_MS,
) -> AsyncEngine:
    """The engine mutations run on: on SQLite its own, with one connection, whose transactions
    take the write lock at BEGIN; elsewhere the read engine itself.

    A deferred SQLite transaction that reads and then writes fails (SQLITE_BUSY) when another
    writer committed in between; BEGIN IMMEDIATE makes concurrent writers queue instead. Reads
    keep deferred transactions so they never wait for each other.

    SQLite writes one transaction at a time whatever the connections, and a connection waiting
    for the lock polls it, sleeping up to 100 ms between tries, so that newcomers overtake
    writers that have waited long. One connection makes the process's writers queue for it in
    turn instead (bench/README.md, 16 writers: throughput within the noise, p99 0.45-0.58 s
    instead of 2.6-3.0 s, and none refused at the busy timeout instead of 8-10 a minute): each
    waits at most the busy timeout for its turn, then as long again for a lock another process
    holds.
    """
    if url.get_backend_name() != "sqlite":
        return read_engine
    engine = create_engine(
        url,
        statement_timeout_ms=statement_timeout_ms,
        sqlite_busy_timeout_ms=sqlite_busy_timeout_ms,
        pool_size=1,
        pool_timeout_seconds=sqlite_busy_timeout_ms / 1000,
    )
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


class SqliteStatementTimeout:
    """Interrupts any SQLite statement that runs longer than `seconds`, as PostgreSQL's
    statement_timeout cancels one; the statement then fails with SQLITE_INTERRUPT.

    Each connection gets a progress handler, which SQLite calls every few thousand virtual
    machine instructions, in the thread running the statement; it stops the statement once the
    deadline its cursor execution set has passed. Waiting for another connection's write lock
    runs no instructions: the busy timeout bounds that. Rows are fetched within the execution
    (the async driver reads them all before it returns), except on a streaming cursor, whose
    fetches after the first are not bounded.
    """

    # Instructions between two calls of the handler: a few hundred microseconds of work, so
    # that the handler (which takes the GIL) costs little and a statement stops promptly.
    INSTRUCTIONS = 10_000
    _KEY = "pomreport_statement_deadline"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def install(self, engine: AsyncEngine) -> None:
        """Set the handler on each new connection and the deadline around each statement."""
        sync_engine = engine.sync_engine
        event.listen(sync_engine, "connect", self._on_connect)
        event.listen(sync_engine, "before_cursor_execute", self._start)
        event.listen(sync_engine, "after_cursor_execute", self._end)
        event.listen(sync_engine, "handle_error", self._on_error)
        event.listen(sync_engine, "reset", self._on_reset)

    def _on_connect(self, dbapi_connection: Any, record: Any) -> None:
        deadline = _Deadline()
        record.info[self._KEY] = deadline
        dbapi_connection.run_async(
            lambda driver: driver.set_progress_handler(deadline.passed, self.INSTRUCTIONS)
        )

    def _start(self, connection: Any, *_args: Any) -> None:
        deadline = connection.info.get(self._KEY)
        if deadline is not None:
            deadline.at = time.monotonic() + self.seconds

    def _end(self, connection: Any, *_args: Any) -> None:
        deadline = connection.info.get(self._KEY)
        if deadline is not None:
            deadline.at = None

    def _on_error(self, context: Any) -> None:
        if context.connection is not None and not context.connection.closed:
            self._end(context.connection)

    def _on_reset(self, _dbapi_connection: Any, record: Any, _state: Any) -> None:
        # A statement whose task was cancelled ends neither way; its deadline must not outlive
        # it into the rollback that returns the connection to the pool.
        deadline = record.info.get(self._KEY)
        if deadline is not None:
            deadline.at = None


class _Deadline:
    """When the statement running on one SQLite connection must stop; None between them."""

    __slots__ = ("at",)

    def __init__(self) -> None:
        self.at: float | None = None

    def passed(self) -> int:
        """SQLite's progress handler: non-zero interrupts the running statement."""
        at = self.at
        return 1 if at is not None and time.monotonic() > at else 0


def create_session_maker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Create the session factory; objects stay readable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)
