"""What every resolver of a request can reach: settings, sessions, events, loaders, the caller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from strawberry.extensions import SchemaExtension

from service.auth.api_keys import ApiKeyRegistry, Principal
from service.auth.row_scope import NO_READS, RowScope, scoped_session_maker
from service.errors import UnauthenticatedError
from service.events.callback_events import CallbackEvents
from service.graph.loaders import Loaders
from service.settings import Settings


@dataclass(slots=True)
class Context:
    """Per-request context; resolvers open their own short sessions from the session makers.

    `session_maker` sees only the rows the principal may see (see `service.auth.row_scope`);
    every read goes through it. Without a principal nothing runs (`OperationAuthorization`),
    and a read would be refused all the same.
    """

    settings: Settings
    database_session_maker: async_sessionmaker[AsyncSession]
    write_session_maker: async_sessionmaker[AsyncSession]
    events: CallbackEvents
    api_keys: ApiKeyRegistry
    principal: Principal | None
    # The Authorization value the principal came from, and how the client reached us: a
    # WebSocket checks its key again on every operation and every delivered change.
    credentials: str | None = None
    proxied: bool = False
    is_websocket: bool = False
    # Set by Strawberry from a WebSocket's connection_init payload.
    connection_params: dict[str, object] | None = None
    session_maker: async_sessionmaker[AsyncSession] = field(init=False)
    loaders: Loaders = field(init=False)

    def __post_init__(self) -> None:
        self.authenticate_as(self.principal)

    def authenticate_as(self, principal: Principal | None) -> None:
        """Act for `principal` from now on: its row scope applies to every later read."""
        self.principal = principal
        scope = principal.row_scope if principal is not None else NO_READS
        self.session_maker = scoped_session_maker(self.database_session_maker, scope)
        self.refresh_loaders()

    async def authenticate(self, credentials: str | None) -> None:
        """Act for whoever `credentials` name; raises UnauthenticatedError if nobody."""
        principal = await self.api_keys.authenticate(credentials, proxied=self.proxied)
        self.credentials = credentials
        if principal != self.principal:
            self.authenticate_as(principal)

    async def check_principal_still_valid(self) -> None:
        """Drop the principal when its key was revoked (or open mode ended) since it was
        checked; later operations on this connection are then refused."""
        if self.principal is None:
            return
        try:
            await self.authenticate(self.credentials)
        except UnauthenticatedError:
            self.authenticate_as(None)

    @property
    def row_scope(self) -> RowScope:
        """The rows the caller may see; reading anything needs a principal."""
        if self.principal is None:
            raise UnauthenticatedError("this operation needs an API key")
        return self.principal.row_scope

    def refresh_loaders(self) -> None:
        """Start over with empty loaders (each subscription event sees current rows)."""
        self.loaders = Loaders(self.session_maker)


Info = strawberry.Info[Context, None]


class FreshLoadersPerOperation(SchemaExtension):
    """Every operation starts with empty loaders, and on a WebSocket with its key checked
    again: the connection keeps one context for all its operations, a query on it must not
    see rows cached by an earlier one, and a key revoked meanwhile must not work."""

    async def on_operation(self) -> AsyncIterator[None]:
        context = self.execution_context.context
        if isinstance(context, Context):
            if context.is_websocket:
                await context.check_principal_still_valid()
            context.refresh_loaders()
        yield
