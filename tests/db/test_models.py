from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.db.models import Agent, Campaign, Contact, Job
from service.db.models.callback import (
    Callback,
    CallbackAttempt,
    CallbackStatus,
    CallbackType,
    SystemCompletionCode,
)
from service.db.models.campaign import CampaignState, CampaignType
from service.db.models.job import JobState

CREATED = dt.datetime(2026, 3, 29, 0, 30, tzinfo=dt.UTC)


async def _add_reference_rows(session: AsyncSession) -> None:
    session.add_all(
        [
            Campaign(
                id=1,
                name="Spring Renewals",
                campaign_type=CampaignType.FINITE,
                strategy_name="Sales_Strategy",
                max_attempts=3,
                state=CampaignState.RUNNING,
            ),
            Campaign(
                id=2,
                name="Win Back",
                campaign_type=CampaignType.INFINITE,
                strategy_name="Retention_Strategy",
                max_attempts=2,
                state=CampaignState.RUNNING,
            ),
            Agent(agent_id="A1001", name="Ava Smith"),
            Contact(
                contact_id="C1",
                first_name="Noah",
                last_name="Kim",
                phone_number="+1 555 0100",
                time_zone="America/New_York",
            ),
        ]
    )
    await session.flush()
    session.add_all(
        [
            Job(job_id=7, campaign_id=1, started_at=CREATED, state=JobState.ACTIVE),
            Job(job_id=8, campaign_id=2, started_at=CREATED, state=JobState.ACTIVE),
        ]
    )
    await session.flush()


def _callback(callback_id: str, **changes: object) -> Callback:
    values: dict[str, object] = {
        "callback_id": callback_id,
        "callback_type": CallbackType.CAMPAIGN,
        "campaign_id": 1,
        "job_id": 7,
        "creator_agent_id": "A1001",
        "contact_id": "C1",
        "call_id": "CALL1",
        "created_at": CREATED,
        "scheduled_start_at": CREATED + dt.timedelta(hours=1),
        "scheduled_end_at": CREATED + dt.timedelta(hours=5),
        "status": CallbackStatus.ACTIVE,
    }
    values.update(changes)
    return Callback(**values)


async def _insert(session_maker: async_sessionmaker[AsyncSession], *callbacks: Callback) -> None:
    async with session_maker.begin() as session:
        await _add_reference_rows(session)
        session.add_all(callbacks)


async def test_callback_second_active_for_same_agent_contact_call_fails(
    session_maker: async_sessionmaker[AsyncSession],
) -> None:
    with pytest.raises(IntegrityError, match=r"(?i)unique"):
        await _insert(session_maker, _callback("CB1"), _callback("CB2"))


async def test_callback_active_beside_ended_ones_and_other_calls_is_allowed(
    session_maker: async_sessionmaker[AsyncSession],
) -> None:
    await _insert(
        session_maker,
        _callback("CB1", status=CallbackStatus.OVERWRITTEN),
        _callback("CB2", status=CallbackStatus.EXPIRED),
        _callback("CB3"),
        _callback("CB4", call_id="CALL2"),
    )
    async with session_maker() as session:
        active = await session.scalars(
            select(Callback.callback_id).where(Callback.status == CallbackStatus.ACTIVE)
        )
        assert sorted(active) == ["CB3", "CB4"]


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param(
            {"scheduled_end_at": CREATED - dt.timedelta(minutes=1)}, id="end-before-start"
        ),
        pytest.param({"callback_type": CallbackType.AGENT}, id="agent-type-without-agent"),
        pytest.param({"created_for_agent_id": "A1001"}, id="campaign-type-with-agent"),
        pytest.param({"job_id": 8}, id="job-of-another-campaign"),
        pytest.param({"contact_id": "C404"}, id="unknown-contact"),
        pytest.param({"custom_completion_code": "Sale"}, id="attempt-summary-without-attempt"),
    ],
)
async def test_callback_inconsistent_rows_fail_at_the_database(
    session_maker: async_sessionmaker[AsyncSession], changes: dict[str, object]
) -> None:
    with pytest.raises(IntegrityError):
        await _insert(session_maker, _callback("CB1", **changes))


async def test_callback_status_outside_the_enum_fails_at_the_database(
    session_maker: async_sessionmaker[AsyncSession],
) -> None:
    await _insert(session_maker, _callback("CB1"))
    async with session_maker() as session:
        connection = await session.connection()
        with pytest.raises(IntegrityError):
            await connection.exec_driver_sql(
                "UPDATE callback SET status = 'PENDING' WHERE callback_id = 'CB1'"
            )


async def test_callback_dummy_attempt_without_system_code_fails(
    session_maker: async_sessionmaker[AsyncSession],
) -> None:
    await _insert(session_maker, _callback("CB1"))
    dummy_without_code = CallbackAttempt(callback_id="CB1", attempted_at=CREATED, is_dummy=True)
    async with session_maker() as session:
        session.add(dummy_without_code)
        with pytest.raises(IntegrityError):
            await session.commit()


async def test_callback_times_are_stored_in_utc_and_come_back_aware(
    session_maker: async_sessionmaker[AsyncSession],
) -> None:
    berlin = dt.timezone(dt.timedelta(hours=2))
    created_in_berlin = dt.datetime(2026, 3, 29, 3, 30, 0, 250_000, tzinfo=berlin)
    await _insert(session_maker, _callback("CB1", created_at=created_in_berlin))
    async with session_maker.begin() as session:
        session.add(
            CallbackAttempt(
                callback_id="CB1",
                attempted_at=CREATED,
                system_completion_code=SystemCompletionCode.CALLBACK_POSTPONED,
                is_dummy=True,
            )
        )
    async with session_maker() as session:
        callback = await session.get_one(Callback, "CB1")
        assert callback.created_at == created_in_berlin
        assert callback.created_at.utcoffset() == dt.timedelta(0)
        assert callback.created_at.hour == 1
        # Comparisons run in UTC on both stores.
        found = await session.scalars(
            select(Callback.callback_id).where(
                Callback.created_at < dt.datetime(2026, 3, 29, 1, 30, 0, 250_001, tzinfo=dt.UTC)
            )
        )
        assert list(found) == ["CB1"]


async def test_callback_naive_times_are_refused(
    session_maker: async_sessionmaker[AsyncSession],
) -> None:
    with pytest.raises(Exception, match="no time zone"):
        await _insert(session_maker, _callback("CB1", created_at=dt.datetime(2026, 3, 29)))


def test_campaign_display_name_puts_type_and_strategy_first() -> None:
    campaign = Campaign(
        name="Spring Renewals", campaign_type=CampaignType.FINITE, strategy_name="Sales_Strategy"
    )
    assert campaign.display_name == "[Finite][Sales_Strategy] Spring Renewals"
