"""Which callback rows a caller may see, applied once: to every ORM SELECT of its sessions.

An agent key sees the callbacks the agent created, was assigned (Created For) or serviced
(Serviced By, the latest attempt), and the attempts of those callbacks; every other role
sees every row. An agent's sessions are `RowScopedSession`s carrying the rule, and that
class's `do_orm_execute` hook adds it to each of their SELECTs, so root and nested
connections, counts, the report, loaders and `node(id:)` all obey it without any resolver
knowing, subqueries included.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, event, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria

from service.db.models.callback import Callback, CallbackAttempt
from service.errors import UnauthenticatedError

_SESSION_INFO_KEY = "pomreport.row_scope"

# The callback columns naming an agent an agent key may see the callback through.
AGENT_VISIBILITY_COLUMNS = ("creator_agent_id", "created_for_agent_id", "serviced_by_agent_id")


@dataclass(frozen=True, slots=True)
class RowScope:
    """The rows a caller may see: all of them, those of one agent's callbacks, or none."""

    agent_id: str | None = None
    # Nobody authenticated: any read is refused (a second line behind OperationAuthorization).
    refuses_reads: bool = False

    @property
    def is_unrestricted(self) -> bool:
        """Whether every row is visible (no criteria to add)."""
        return self.agent_id is None and not self.refuses_reads

    def callback_condition(self) -> ColumnElement[bool]:
        """The SQL condition on `callback` rows this scope admits."""
        if self.agent_id is None:
            return true()
        return or_(
            *(getattr(Callback, column) == self.agent_id for column in AGENT_VISIBILITY_COLUMNS)
        )

    def attempt_condition(self) -> ColumnElement[bool]:
        """The SQL condition on `callback_attempt` rows: attempts of admitted callbacks."""
        if self.agent_id is None:
            return true()
        return CallbackAttempt.callback_id.in_(
            select(Callback.callback_id).where(self.callback_condition())
        )

    def admits(self, callback: Callback) -> bool:
        """The same rule in Python, for rows loaded once and shared (subscription fan-out)."""
        if self.agent_id is None:
            return True
        return any(
            getattr(callback, column) == self.agent_id for column in AGENT_VISIBILITY_COLUMNS
        )


UNRESTRICTED = RowScope()
NO_READS = RowScope(refuses_reads=True)


class RowScopedSession(Session):
    """A session whose ORM SELECTs see only the rows its `info` scope admits."""


def scoped_session_maker(
    session_maker: async_sessionmaker[AsyncSession], scope: RowScope
) -> async_sessionmaker[AsyncSession]:
    """Sessions like `session_maker`'s whose SELECTs see only the rows `scope` admits."""
    if scope.is_unrestricted:
        return session_maker
    return async_sessionmaker(
        session_maker.kw["bind"],
        expire_on_commit=session_maker.kw.get("expire_on_commit", True),
        sync_session_class=RowScopedSession,
        info={_SESSION_INFO_KEY: scope},
    )


@event.listens_for(RowScopedSession, "do_orm_execute")
def _restrict_to_scope(state: ORMExecuteState) -> None:
    # Column and relationship loads refine rows a SELECT already admitted.
    if not state.is_select or state.is_column_load or state.is_relationship_load:
        return
    scope: RowScope = state.session.info[_SESSION_INFO_KEY]
    if scope.refuses_reads:
        raise UnauthenticatedError("this operation needs an API key")
    state.statement = state.statement.options(
        with_loader_criteria(Callback, scope.callback_condition(), include_aliases=True),
        with_loader_criteria(CallbackAttempt, scope.attempt_condition(), include_aliases=True),
    )
