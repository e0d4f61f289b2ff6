"""Which rows a caller may see, defined once and applied to every read of its requests.

An agent key sees the callbacks the agent created, was assigned (Created For) or serviced
(Serviced By, the latest attempt), the attempts and status changes of those callbacks, and
the contacts of those callbacks (a contact's phone numbers and e-mail are nobody else's
business); every other table, and every row for every other role, is visible.
`RowScope.condition` is the rule for each table, in SQL, and both execution paths take it
from there:

- the general path's sessions are `RowScopedSession`s carrying the scope, whose
  `do_orm_execute` hook adds the rule to each of their SELECTs, so root and nested
  connections, counts, the report, loaders and `node(id:)` all obey it without any
  resolver knowing, subqueries included;
- the compiled path (`service.compiled`) builds Core statements the hook never sees, and adds
  `RowScope.condition` itself to every table it reads rows of (`Run.visible`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, event, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria

from service.db.models.callback import Callback, CallbackAttempt
from service.db.models.contact import Contact
from service.db.models.status_change import StatusChangeEntry
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
        # On the table's columns, not the ORM attributes: a subquery of them (below) is then
        # Core to the ORM hook, which leaves it alone instead of adding this rule to it twice.
        callbacks = Callback.__table__.c
        return or_(*(callbacks[column] == self.agent_id for column in AGENT_VISIBILITY_COLUMNS))

    def attempt_condition(self) -> ColumnElement[bool]:
        """The SQL condition on `callback_attempt` rows: attempts of admitted callbacks."""
        if self.agent_id is None:
            return true()
        return CallbackAttempt.callback_id.in_(self._admitted_callbacks("callback_id"))

    def contact_condition(self) -> ColumnElement[bool]:
        """The SQL condition on `contact` rows: contacts of admitted callbacks."""
        if self.agent_id is None:
            return true()
        # Uncorrelated: the agent's callbacks are found once through their agent indexes
        # (some hundreds), not probed for each of the tens of thousands of contacts.
        return Contact.contact_id.in_(self._admitted_callbacks("contact_id"))

    def status_change_condition(self) -> ColumnElement[bool]:
        """The SQL condition on `callback_status_change` rows: changes of admitted callbacks."""
        if self.agent_id is None:
            return true()
        return StatusChangeEntry.callback_id.in_(self._admitted_callbacks("callback_id"))

    def _admitted_callbacks(self, column: str) -> Select[Any]:
        """SELECT one column of the callbacks this scope admits."""
        callbacks = Callback.__table__
        return select(callbacks.c[column]).where(self.callback_condition())

    def condition(self, model: type[Any]) -> ColumnElement[bool]:
        """The SQL condition on `model`'s rows this scope admits (true for unscoped tables)."""
        scoped = SCOPED_TABLES.get(model)
        if scoped is None or self.agent_id is None:
            return true()
        return scoped(self)

    def admits(self, callback: Callback) -> bool:
        """The same rule in Python, for rows loaded once and shared (subscription fan-out)."""
        if self.agent_id is None:
            return True
        return any(
            getattr(callback, column) == self.agent_id for column in AGENT_VISIBILITY_COLUMNS
        )


# The tables an agent key sees only part of, each with its rule. A to-one relation into one
# of them needs no rule of its own when it leaves from an admitted row that the rule itself
# admits the target through (a callback's contact); the compiled path relies on that.
SCOPED_TABLES: dict[type[Any], Callable[[RowScope], ColumnElement[bool]]] = {
    Callback: RowScope.callback_condition,
    CallbackAttempt: RowScope.attempt_condition,
    Contact: RowScope.contact_condition,
    StatusChangeEntry: RowScope.status_change_condition,
}

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
        *(
            with_loader_criteria(model, scope.condition(model), include_aliases=True)
            for model in SCOPED_TABLES
        )
    )
