from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.db.models import Base, Campaign
from service.db.models.callback import Callback, CallbackStatus
from service.db.models.campaign import CampaignState, CampaignType
from service.seed.bulk_insert import SeedError, seed_database
from service.seed.demo_data import DemoData, SeedPlan

AS_OF = dt.datetime(2026, 11, 29, 3, tzinfo=dt.UTC)
PLAN = SeedPlan(callbacks=1500, seed=5, as_of=AS_OF)


def _ignore_progress(_message: str) -> None:
    pass


async def _dump(
    session_maker: async_sessionmaker[AsyncSession],
) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table, in primary key order, as the ORM reads it."""
    dump: dict[str, list[tuple[object, ...]]] = {}
    async with session_maker() as session:
        for table in Base.metadata.sorted_tables:
            rows = await session.execute(select(table).order_by(*table.primary_key.columns))
            dump[table.name] = [tuple(row) for row in rows]
    return dump


async def _delete_everything(session_maker: async_sessionmaker[AsyncSession]) -> None:
    async with session_maker.begin() as session:
        for table in reversed(Base.metadata.sorted_tables):
            await session.execute(table.delete())


async def test_seed_loads_the_plan_and_reads_back_through_the_models(
    database_url: URL, session_maker: async_sessionmaker[AsyncSession]
) -> None:
    summary = await seed_database(database_url, PLAN, progress=_ignore_progress)
    assert summary.callbacks == 1500
    demo = DemoData(PLAN)
    campaigns, jobs = demo.campaign_and_job_rows()
    demo.agent_rows()
    list(demo.contact_rows())
    first_chunk = next(demo.callback_chunks())
    async with session_maker() as session:
        assert await session.scalar(select(func.count()).select_from(Callback)) == 1500
        assert (
            await session.scalar(text("SELECT count(*) FROM callback_attempt")) == summary.attempts
        )
        assert await session.scalar(text("SELECT count(*) FROM job")) == len(jobs)
        callback = await session.get_one(Callback, first_chunk.callbacks[0][0])
        assert callback.created_at == first_chunk.callbacks[0][8]
        assert callback.created_at.tzinfo is not None
        assert isinstance(callback.status, CallbackStatus)
    # Identity columns continue after the seeded ids.
    async with session_maker.begin() as session:
        campaign = Campaign(
            name="Added Later",
            campaign_type=CampaignType.FINITE,
            strategy_name="Sales_Strategy",
            max_attempts=2,
            state=CampaignState.RUNNING,
        )
        session.add(campaign)
        await session.flush()
        assert campaign.id == len(campaigns) + 1


async def test_seed_same_seed_twice_gives_identical_rows(
    database_url: URL, session_maker: async_sessionmaker[AsyncSession]
) -> None:
    await seed_database(database_url, PLAN, progress=_ignore_progress)
    first = await _dump(session_maker)
    await _delete_everything(session_maker)
    await seed_database(database_url, PLAN, progress=_ignore_progress)
    second = await _dump(session_maker)
    assert first == second
    assert len(first["callback"]) == 1500


async def test_seed_refuses_a_database_with_data_unless_told_to_skip(
    database_url: URL, session_maker: async_sessionmaker[AsyncSession]
) -> None:
    await seed_database(
        database_url, SeedPlan(callbacks=50, as_of=AS_OF), progress=_ignore_progress
    )
    with pytest.raises(SeedError, match="already holds 24 campaigns and 50 callbacks"):
        await seed_database(database_url, PLAN, progress=_ignore_progress)
    skipped = await seed_database(database_url, PLAN, if_empty=True, progress=_ignore_progress)
    assert skipped.skipped
    async with session_maker() as session:
        assert await session.scalar(select(func.count()).select_from(Callback)) == 50
