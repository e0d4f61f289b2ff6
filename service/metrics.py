"""What `/metrics` shows (Prometheus text format, SPEC 6), kept by the official client.

With several worker processes (`serve --workers N`), `serve` points PROMETHEUS_MULTIPROC_DIR
at a directory of its own before any worker starts; each worker then keeps its values in files
there, and a scrape, whichever worker answers it, adds up every worker's (gauges of things that
live in a process, such as open WebSockets, are summed over the live workers: a scrape forgets
workers that have exited). Everything here
is counted where it happens with `inc`/`dec`/`observe`, which works the same in both modes.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from sqlalchemy.pool import Pool, QueuePool

MULTIPROCESS_DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_STATEMENT_BUCKETS = (0, 1, 2, 3, 4, 6, 8, 12, 16, 32, 64)

# Operation names come from clients: only those of documents that validated count, and the
# first this many distinct ones (of at most so many characters) get their own label, later
# ones count under "other", so a client cannot grow the metrics without bound.
MAX_OPERATION_NAMES = 200
MAX_OPERATION_NAME_LENGTH = 64

REQUESTS = Counter(
    "pomreport_graphql_requests",
    "GraphQL operations answered over HTTP, by type, name and outcome (ok, or the first "
    "error's code).",
    ["operation_type", "operation_name", "outcome"],
)
REQUEST_SECONDS = Histogram(
    "pomreport_graphql_request_duration_seconds",
    "Time to answer a GraphQL request over HTTP, from its arrival to its last byte.",
    ["operation_type"],
    buckets=_LATENCY_BUCKETS,
)
STATEMENTS = Histogram(
    "pomreport_sql_statements_per_request",
    "SQL statements a GraphQL request over HTTP ran.",
    buckets=_STATEMENT_BUCKETS,
)
WEBSOCKETS = Gauge(
    "pomreport_websockets_open",
    "WebSocket connections open.",
    multiprocess_mode="livesum",
)
SUBSCRIPTIONS = Gauge(
    "pomreport_subscriptions_active",
    "Subscriptions receiving status changes, over WebSockets and HTTP.",
    multiprocess_mode="livesum",
)
EVENTS_PUBLISHED = Counter(
    "pomreport_events_published",
    "Status changes published after their transaction committed.",
)
EVENTS_DELIVERED = Counter(
    "pomreport_events_delivered",
    "Status changes delivered to subscribers (one per subscriber and change).",
)
SUBSCRIBERS_TOO_SLOW = Counter(
    "pomreport_subscribers_closed_too_slow",
    "Subscriptions closed with SUBSCRIBER_TOO_SLOW.",
)
KEY_LOOKUPS = Counter(
    "pomreport_api_key_lookups",
    "API keys looked up in the database (the rest are answered from the cache), by result.",
    ["result"],
)
TRUSTED_DOCUMENT_REFUSALS = Counter(
    "pomreport_trusted_document_refusals",
    "Requests refused in allow-list mode (POMREPORT_TRUSTED_DOCUMENTS), by reason: a hash the "
    "manifest lacks (hash_not_found) or a document it lacks (not_trusted).",
    ["reason"],
)
POOL_CHECKED_OUT = Gauge(
    "pomreport_db_connections_checked_out",
    "Database connections in use (pooled stores; as of the worker's last request).",
    multiprocess_mode="livesum",
)
POOL_OPEN = Gauge(
    "pomreport_db_connections_open",
    "Database connections open, in use or idle (pooled stores; as of the worker's last request).",
    multiprocess_mode="livesum",
)
REPLICA_UP = Gauge(
    "pomreport_replica_up",
    "Whether a read replica takes reads: 1 when it answers and lags within "
    "POMREPORT_REPLICA_MAX_LAG_SECONDS, else 0 (as of its last check; with several workers, "
    "the lowest).",
    ["replica"],
    multiprocess_mode="livemin",
)
REPLICA_LAG_SECONDS = Gauge(
    "pomreport_replica_lag_seconds",
    "How far a read replica's replay is behind the primary, in seconds (an upper bound, to "
    "within one check; -1 when unknown: unreachable, or behind everything the checks saw).",
    ["replica"],
    multiprocess_mode="livemax",
)
REPLICA_LAG_BYTES = Gauge(
    "pomreport_replica_lag_bytes",
    "WAL the primary has written that a read replica has not replayed, in bytes (-1 when unknown).",
    ["replica"],
    multiprocess_mode="livemax",
)
READS_ROUTED = Counter(
    "pomreport_reads_routed",
    "Queries and mutations run and CSV exports opened, with read replicas configured, by "
    "where they read: a replica, or the primary (mutations, no replica up, or the caller's "
    "read-your-writes window). A read run again on the primary after its replica failed "
    "counts twice.",
    ["target"],
)

# The statement count of the request the current task works for.
_STATEMENT_COUNT: ContextVar[list[int] | None] = ContextVar("_STATEMENT_COUNT", default=None)
_operation_names: set[str] = set()


def operation_name_label(name: str | None) -> str:
    """The label for an operation name: "" for none, "other" past MAX_OPERATION_NAMES names
    (per process) or MAX_OPERATION_NAME_LENGTH characters."""
    if not name:
        return ""
    if name in _operation_names:
        return name
    if len(_operation_names) >= MAX_OPERATION_NAMES or len(name) > MAX_OPERATION_NAME_LENGTH:
        return "other"
    _operation_names.add(name)
    return name


def start_counting_statements() -> list[int]:
    """Count the statements of the request the current task starts (and its subtasks)."""
    counter = [0]
    _STATEMENT_COUNT.set(counter)
    return counter


def count_statement() -> None:
    """A statement ran (called by the engines' `before_cursor_execute`)."""
    counter = _STATEMENT_COUNT.get()
    if counter is not None:
        counter[0] += 1


def record_pool_use(pool: Pool) -> None:
    """Show a pool's connections as they are now (each worker at each of its requests and
    scrapes; counting pool events drifted when a checkout was cancelled half-way)."""
    if isinstance(pool, QueuePool):
        POOL_CHECKED_OUT.set(pool.checkedout())
        POOL_OPEN.set(pool.checkedout() + pool.checkedin())


def record_replica(
    name: str, *, is_up: bool, lag_seconds: float | None, lag_bytes: int | None
) -> None:
    """Show what the last check of a read replica found."""
    REPLICA_UP.labels(name).set(1 if is_up else 0)
    REPLICA_LAG_SECONDS.labels(name).set(-1 if lag_seconds is None else lag_seconds)
    REPLICA_LAG_BYTES.labels(name).set(-1 if lag_bytes is None else lag_bytes)


def prepare_multiprocess_directory(directory: Path) -> None:
    """Empty the workers' directory before they start: values of an earlier run (or of workers
    long gone) must not be added to this one's."""
    for stale in directory.glob("*.db"):
        stale.unlink()


def _forget_dead_workers(directory: Path) -> None:
    """Drop the live gauges of workers that have exited (uvicorn replaces a worker that dies),
    so open WebSockets and connections are summed over the living only."""
    for live in directory.glob("gauge_live*_*.db"):
        pid = int(live.stem.rsplit("_", 1)[1])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]
        except PermissionError:  # alive, someone else's
            pass


def exposition() -> bytes:
    """The metrics in Prometheus text format: this process's, or every worker's."""
    directory = os.environ.get(MULTIPROCESS_DIRECTORY)
    if directory:
        _forget_dead_workers(Path(directory))
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # untyped upstream
        return generate_latest(registry)
    return generate_latest()
