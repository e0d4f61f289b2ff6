from __future__ import annotations

import collections
import datetime as dt
from dataclasses import dataclass

import pytest

from service.db.models.callback import CallbackStatus, CallbackType, SystemCompletionCode
from service.seed.demo_data import (
    ATTEMPT_COLUMNS,
    CALLBACK_COLUMNS,
    CAMPAIGN_COLUMNS,
    CONTACT_COLUMNS,
    AttemptRow,
    CallbackRow,
    CampaignRow,
    ContactRow,
    DemoData,
    JobRow,
    SeedPlan,
)

AS_OF = dt.datetime(2026, 11, 29, 3, tzinfo=dt.UTC)


@dataclass
class Generated:
    campaigns: list[CampaignRow]
    jobs: list[JobRow]
    contacts: list[ContactRow]
    callbacks: list[CallbackRow]
    attempts: list[AttemptRow]


def _generate(plan: SeedPlan) -> Generated:
    demo = DemoData(plan)
    campaigns, jobs = demo.campaign_and_job_rows()
    demo.agent_rows()
    generated = Generated(campaigns, jobs, list(demo.contact_rows()), [], [])
    for chunk in demo.callback_chunks(chunk_size=1000):
        generated.callbacks.extend(chunk.callbacks)
        generated.attempts.extend(chunk.attempts)
    return generated


@pytest.fixture(scope="module")
def generated() -> Generated:
    return _generate(SeedPlan(callbacks=20_000, seed=3, as_of=AS_OF))


def _column(row: tuple[object, ...], columns: tuple[str, ...], name: str) -> object:
    return row[columns.index(name)]


def test_demo_data_same_seed_gives_same_rows() -> None:
    plan = SeedPlan(callbacks=3000, seed=11, as_of=AS_OF)
    assert _generate(plan) == _generate(plan)
    other = SeedPlan(callbacks=3000, seed=12, as_of=AS_OF)
    assert _generate(plan).callbacks != _generate(other).callbacks


def test_demo_data_makes_exactly_the_requested_callbacks(
    generated: Generated,
) -> None:
    callbacks = generated.callbacks
    assert len(callbacks) == 20_000
    assert len({row[0] for row in callbacks}) == 20_000


def test_demo_data_covers_every_type_status_and_system_code(
    generated: Generated,
) -> None:
    callbacks, attempts = generated.callbacks, generated.attempts
    types = collections.Counter(
        _column(row, CALLBACK_COLUMNS, "callback_type") for row in callbacks
    )
    statuses = collections.Counter(_column(row, CALLBACK_COLUMNS, "status") for row in callbacks)
    codes = {_column(row, ATTEMPT_COLUMNS, "system_completion_code") for row in attempts}
    assert set(types) == {member.value for member in CallbackType}
    assert set(statuses) == {member.value for member in CallbackStatus}
    assert codes - {None} == {member.value for member in SystemCompletionCode}
    # Plausible proportions: most callbacks get served, few stay pending.
    assert statuses["COMPLETED"] > statuses["EXPIRED"] > statuses["ACTIVE"]


def test_demo_data_statuses_follow_the_callback_rules(
    generated: Generated,
) -> None:
    callbacks, attempts = generated.callbacks, generated.attempts
    attempts_by_callback: dict[str, list[AttemptRow]] = collections.defaultdict(list)
    for attempt in attempts:
        attempts_by_callback[attempt[1]].append(attempt)
    ended_campaigns = {
        row[0] for row in generated.campaigns if _column(row, CAMPAIGN_COLUMNS, "ended_at")
    }
    contacts = {row[0]: row for row in generated.contacts}
    active_keys: set[tuple[object, ...]] = set()
    for row in callbacks:
        value = dict(zip(CALLBACK_COLUMNS, row, strict=True))
        status, end = value["status"], value["scheduled_end_at"]
        assert isinstance(end, dt.datetime)
        assert value["created_at"] < value["scheduled_start_at"] <= end  # type: ignore[operator]
        assert AS_OF - dt.timedelta(days=90) <= value["created_at"] < AS_OF  # type: ignore[operator]
        own = attempts_by_callback[str(value["callback_id"])]
        assert [a[2] for a in own] == sorted(a[2] for a in own)
        assert all(value["created_at"] <= a[2] <= AS_OF for a in own)  # type: ignore[operator]
        latest = own[-1] if own else None
        assert value["last_attempt_at"] == (latest[2] if latest else None)
        assert value["serviced_by_agent_id"] == (latest[3] if latest else None)
        assert value["system_completion_code"] == (latest[5] if latest else None)
        if status == "ACTIVE":
            assert end > AS_OF
            key = (value["creator_agent_id"], value["contact_id"], value["call_id"])
            assert key not in active_keys
            active_keys.add(key)
        elif status == "EXPIRED":
            assert latest is not None
            assert (latest[2], latest[5], latest[6]) == (end, "CALLBACK_EXPIRED", True)
        elif status == "COMPLETED":
            assert latest is not None
            assert None not in (latest[3], latest[4])
            assert not latest[6]
        elif status == "CONTACT_EXCLUDED":
            assert latest is not None
            assert (latest[5], latest[6]) == ("CONTACT_EXCLUDED", True)
            contact = contacts[str(value["contact_id"])]
            assert _column(contact, CONTACT_COLUMNS, "excluded_at") == latest[2]
        elif status == "CAMPAIGN_TERMINATED":
            assert value["campaign_id"] in ended_campaigns
        if value["callback_type"] in ("AGENT", "STRICT_AGENT"):
            assert value["created_for_agent_id"] is not None
        else:
            assert value["created_for_agent_id"] is None
        for attempt in own:
            # Dummy attempts are exactly those with a system code, and nobody dialled them.
            assert attempt[6] == (attempt[5] is not None)
            assert not attempt[6] or attempt[3] is None


def test_demo_data_overwritten_callbacks_have_a_later_one_on_the_same_call(
    generated: Generated,
) -> None:
    callbacks = generated.callbacks
    by_call: dict[object, list[CallbackRow]] = collections.defaultdict(list)
    for row in callbacks:
        by_call[(row[4], row[6], row[7])].append(row)
    overwritten = [row for row in callbacks if row[11] == "OVERWRITTEN"]
    assert overwritten
    for row in overwritten:
        successors = [other for other in by_call[(row[4], row[6], row[7])] if other[8] > row[8]]
        assert successors


def test_demo_data_callbacks_belong_to_a_job_of_their_campaign_alive_when_created(
    generated: Generated,
) -> None:
    # What scheduleCallback demands of a callback fed in after the fact: its job had not
    # completed when it was created (and it was not born expired, checked above).
    jobs = {job[0]: job for job in generated.jobs}
    assert {job[4] for job in jobs.values()} >= {"COMPLETED", "ACTIVE"}
    for row in generated.callbacks:
        value = dict(zip(CALLBACK_COLUMNS, row, strict=True))
        created_at, job_id = value["created_at"], value["job_id"]
        assert isinstance(created_at, dt.datetime)
        assert isinstance(job_id, int)
        _job_id, campaign_id, started_at, ended_at, state = jobs[job_id]
        assert campaign_id == value["campaign_id"]
        assert started_at <= created_at
        assert ended_at is None or created_at < ended_at
        assert (ended_at is None) == (state != "COMPLETED")
