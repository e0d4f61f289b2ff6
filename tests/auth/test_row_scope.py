"""The row scope as the sessions apply it, below GraphQL."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.auth.row_scope import NO_READS, UNRESTRICTED, RowScope, scoped_session_maker
from service.db.models import Agent, Callback
from service.errors import UnauthenticatedError


async def test_a_session_without_a_principal_refuses_every_read(
    session_maker: async_sessionmaker[AsyncSession],
) -> None:
    nobody = scoped_session_maker(session_maker, NO_READS)
    async with nobody() as session:
        for statement in (select(Agent), select(func.count()).select_from(Callback)):
            with pytest.raises(UnauthenticatedError):
                await session.execute(statement)


async def test_only_callbacks_are_scoped_and_unrestricted_sessions_stay_plain(
    session_maker: async_sessionmaker[AsyncSession],
) -> None:
    assert scoped_session_maker(session_maker, UNRESTRICTED) is session_maker
    async with session_maker() as session, session.begin():
        session.add(Agent(agent_id="A2", name="Ben"))
    async with scoped_session_maker(session_maker, RowScope("A1"))() as session:
        # Only callbacks and their attempts are scoped; an agent sees every agent.
        assert [agent.agent_id for agent in await session.scalars(select(Agent))] == ["A2"]
