"""The row scope as the sessions apply it, below GraphQL."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.auth.row_scope import (
    NO_READS,
    SCOPED_TABLES,
    UNRESTRICTED,
    RowScope,
    scoped_session_maker,
)
from service.compiled.entities import ENTITY_TYPES, ToOne
from service.db.models import Agent, Callback, Contact
from service.errors import UnauthenticatedError


async def test_a_session_without_a_principal_refuses_every_read(
    session_maker: async_sessionmaker[AsyncSession],
) -> None:
    nobody = scoped_session_maker(session_maker, NO_READS)
    async with nobody() as session:
        for statement in (select(Agent), select(func.count()).select_from(Callback)):
            with pytest.raises(UnauthenticatedError):
                await session.execute(statement)


async def test_agents_stay_visible_and_contacts_need_a_callback_the_agent_sees(
    session_maker: async_sessionmaker[AsyncSession],
) -> None:
    assert scoped_session_maker(session_maker, UNRESTRICTED) is session_maker
    async with session_maker() as session, session.begin():
        session.add(Agent(agent_id="A2", name="Ben"))
        session.add(
            Contact(
                contact_id="C1",
                first_name="Ada",
                last_name="Byron",
                phone_number="+1 555 0100",
                time_zone="UTC",
            )
        )
    async with scoped_session_maker(session_maker, RowScope("A1"))() as session:
        # An agent sees every agent, but no contact none of its callbacks is for.
        assert [agent.agent_id for agent in await session.scalars(select(Agent))] == ["A2"]
        assert list(await session.scalars(select(Contact))) == []
        assert await session.scalar(select(func.count()).select_from(Contact)) == 0


def test_every_relation_the_compiled_path_joins_into_a_scoped_table_is_admitted_by_its_rule() -> (
    None
):
    # The compiled path joins to-one relations without a condition of their own (Run.visible):
    # that is right only where the target's rule admits every target of an admitted row.
    admitted_through = {("Callback", Contact)}  # a contact of a visible callback is visible
    for entity in ENTITY_TYPES.values():
        for relation in entity.extra_fields.values():
            if isinstance(relation, ToOne):
                target = ENTITY_TYPES[relation.target].model
                if target in SCOPED_TABLES:
                    assert (entity.name, target) in admitted_through, (entity.name, relation)
