"""What every resolver of a request can reach: settings, sessions, transactions, events,
loaders and the caller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from strawberry.extensions import SchemaExtension

from service.auth.api_keys import Principal
from service.auth.callers import Caller
from service.auth.row_scope import scoped_session_maker
from service.callbacks.transactions import Transactions
from service.events.transports import CallbackEvents
from service.graph.loaders import Loaders
from service.settings import Settings


@dataclass(slots=True)
class Context:
    """Per-request context; resolvers open their own short sessions from the session makers.

    Every read goes through `scoped_session_maker`, which sees only the rows the caller may
    see (see `service.auth.row_scope`); `unscoped_session_maker` is what it is made from.
    Mutations write through `transactions`. Without a principal nothing runs
    (`OperationAuthorization`), and a read would be refused all the same.
    """

    settings: Settings
    unscoped_session_maker: async_sessionmaker[AsyncSession]
    transactions: Transactions
    events: CallbackEvents
    caller: Caller
    is_websocket: bool = False
    # Set by Strawberry from a WebSocket's connection_init payload.
    connection_params: dict[str, object] | None = None
    scoped_session_maker: async_sessionmaker[AsyncSession] = field(init=False)
    loaders: Loaders = field(init=False)

    def __post_init__(self) -> None:
        self._scope_sessions()

    @property
    def principal(self) -> Principal | None:
        """Who the request acts for, if anybody."""
        return self.caller.principal

    async def authenticate(self, credentials: str | None) -> None:
        """Act for whoever `credentials` name; raises UnauthenticatedError if nobody."""
        if await self.caller.authenticate(credentials):
            self._scope_sessions()

    async def recheck_key(self) -> None:
        """Check the caller's key again (WebSockets); a revoked key leaves no principal."""
        if await self.caller.recheck():
            self._scope_sessions()

    def refresh_loaders(self) -> None:
        """Start over with empty loaders (each subscription event sees current rows)."""
        self.loaders = Loaders(self.scoped_session_maker)

    def _scope_sessions(self) -> None:
        self.scoped_session_maker = scoped_session_maker(
            self.unscoped_session_maker, self.caller.row_scope
        )
        self.refresh_loaders()


Info = strawberry.Info[Context, None]


class FreshLoadersPerOperation(SchemaExtension):
    """Every operation starts with empty loaders, and on a WebSocket with its key checked
    again: the connection keeps one context for all its operations, a query on it must not
    see rows cached by an earlier one, and a key revoked meanwhile must not work."""

    async def on_operation(self) -> AsyncIterator[None]:
        context = self.execution_context.context
        if isinstance(context, Context):
            if context.is_websocket:
                await context.recheck_key()
            context.refresh_loaders()
        yield
