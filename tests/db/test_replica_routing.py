"""Where reads go among the primary and the replicas, and how a replica's lag is measured
from WAL positions (no database: the checks against a real replica are in test_replicas)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from service.db.engines import create_session_maker
from service.db.replicas import PrimaryPositions, ReadTarget, Replica, Replicas, replica_name
from service.settings import parse_replica_urls


def test_lag_is_zero_while_the_replica_keeps_up_even_with_the_primary_idle() -> None:
    positions = PrimaryPositions(keep_seconds=60)
    positions.note(100, at=0)
    for second in range(1, 600):  # ten idle minutes: the position stands still
        positions.note(100, at=second)
    assert positions.lag_seconds(100, at=600.01) == pytest.approx(1.01)
    positions.note(100, at=600)
    assert positions.lag_seconds(100, at=600.01) == pytest.approx(0.01)


def test_lag_grows_while_the_replica_replays_nothing_behind_writes() -> None:
    positions = PrimaryPositions(keep_seconds=60)
    positions.note(100, at=0)
    positions.note(100, at=1)  # last seen where the replica stands
    for second in range(2, 6):
        positions.note(100 + second, at=second)
    assert positions.lag_seconds(100, at=5) == 4
    assert positions.lag_seconds(103, at=5) == 2  # had all the primary wrote by t=3
    assert positions.lag_seconds(105, at=5) == 0
    assert positions.latest == 105


def test_lag_is_unknown_behind_every_position_kept() -> None:
    positions = PrimaryPositions(keep_seconds=10)
    assert positions.lag_seconds(100, at=0) is None  # nothing seen yet
    for second in range(30):
        positions.note(100 + second, at=second)
    assert positions.lag_seconds(100, at=30) is None
    assert positions.lag_seconds(118, at=30) == 12  # the oldest kept: just past the horizon
    assert positions.lag_seconds(99, at=30) is None


@pytest.fixture
async def replicas() -> AsyncIterator[Replicas]:
    """A primary and two replicas (engines that never connect), both taking reads."""
    engines = [create_async_engine("sqlite+aiosqlite:///unused.db") for _ in range(5)]
    primary = ReadTarget(engines[0], create_session_maker(engines[0]))
    members = [Replica(f"replica {n}", engines[n], engines[n + 2], n) for n in (1, 2)]
    for member in members:
        member.set_checked(0.0, 0, max_lag=1.0, measured_at=time.monotonic())
    yield Replicas(primary, members, read_your_writes_seconds=0.2, max_lag_seconds=1.0)
    for engine in engines:
        await engine.dispose()


async def test_reads_take_turns_among_replicas_up_and_fall_to_the_primary(
    replicas: Replicas,
) -> None:
    first, second = replicas.replicas
    assert {replicas.target(None).replica for _ in range(4)} == {first, second}
    first.set_checked(1.5, 100, max_lag=1.0, measured_at=time.monotonic())
    assert not first.is_up
    assert first.status() == {
        "replica": 1,
        "up": False,
        "lagSeconds": 1.5,
        "lagBytes": 100,
        "reason": "lags 1.5 s behind the primary, over 1 s",
    }
    assert {replicas.target(None).replica for _ in range(4)} == {second}
    second.set_down("unreachable")
    assert replicas.target(None) is replicas.primary


async def test_a_writer_reads_the_primary_for_the_window_others_do_not(
    replicas: Replicas,
) -> None:
    replicas.note_write(("key", 1))
    assert replicas.target(("key", 1)) is replicas.primary
    assert replicas.target(("key", 2)).is_replica
    await asyncio.sleep(0.25)
    assert replicas.target(("key", 1)).is_replica


async def test_a_replica_out_of_reach_is_skipped_a_recovery_conflict_only_retried(
    replicas: Replicas,
) -> None:
    first = replicas.replicas[0]
    conflict = asyncpg.SerializationError("canceling statement due to conflict with recovery")
    assert replicas.failed(first.target, conflict)
    assert first.is_up
    assert not replicas.failed(first.target, ValueError("a bug, not the replica"))
    assert not replicas.failed(replicas.primary, ConnectionRefusedError())
    assert replicas.failed(first.target, ConnectionRefusedError("refused"))
    assert not first.is_up
    assert first.reason == "a read could not reach it: refused"


def test_replicas_are_shown_without_their_password() -> None:
    [url] = parse_replica_urls("postgresql://reader:s3cret@replica-1:5433/pomreport")
    assert replica_name(url) == "postgresql://reader:***@replica-1:5433/pomreport"


async def test_a_replica_whose_checks_stalled_takes_no_reads_past_the_bound(
    replicas: Replicas,
) -> None:
    first, second = replicas.replicas
    # Last found within the bound, but that was longer ago than the bound plus a check (the
    # fixture's: 1 s and 1 s): what it holds may be older than a writer's window now.
    first.set_checked(0.5, 0, max_lag=1.0, measured_at=time.monotonic() - 1.6)
    assert first.is_up
    assert {replicas.target(None).replica for _ in range(4)} == {second}
    first.set_checked(0.5, 0, max_lag=1.0, measured_at=time.monotonic())
    assert {replicas.target(None).replica for _ in range(4)} == {first, second}


def test_readyz_shows_a_replica_by_number_and_why_without_the_errors_words() -> None:
    engine = create_async_engine("sqlite+aiosqlite:///unused.db")
    replica = Replica("postgresql://reader:***@10.0.0.7:5433/pomreport", engine, engine, 2)
    replica.set_down("unreachable: could not connect to 10.0.0.7 as reader")
    assert replica.status() == {
        "replica": 2,
        "up": False,
        "lagSeconds": None,
        "lagBytes": None,
        "reason": "unreachable",
    }
