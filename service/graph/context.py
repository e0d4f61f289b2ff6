"""What every resolver of a request can reach: settings, sessions, transactions, events,
loaders and the caller."""

from __future__ import annotations

from collections.abc import AsyncIterator, Hashable, Iterator, Sequence
from dataclasses import dataclass, field

import strawberry
from graphql import GraphQLError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from service.auth.api_keys import Principal
from service.auth.callers import Caller, writer_key
from service.auth.row_scope import scoped_session_maker
from service.callbacks.transactions import Transactions
from service.db.replicas import ReadTarget, Replicas
from service.events.transports import CallbackEvents
from service.graph.loaders import Loaders
from service.settings import Settings


@dataclass(slots=True)
class Context:
    """Per-request context; resolvers open their own short sessions from the session makers.

    Every read goes through `scoped_session_maker`, which sees only the rows the caller may
    see (see `service.auth.row_scope`); `unscoped_session_maker` is what it is made from, on
    the database `read_target` names: a read replica, or the primary (`service.db.replicas`).
    Mutations write through `transactions`. Without a principal nothing runs
    (`OperationAuthorization`), and a read would be refused all the same.
    """

    settings: Settings
    replicas: Replicas
    transactions: Transactions
    events: CallbackEvents
    caller: Caller
    is_websocket: bool = False
    # The client's address: whom mutations are noted for when there is no API key.
    client_address: str | None = None
    # The request carries the cookie a mutation's response sets (service.db.replicas).
    wrote_recently: bool = False
    # Set by Strawberry from a WebSocket's connection_init payload.
    connection_params: dict[str, object] | None = None
    read_target: ReadTarget = field(init=False)
    unscoped_session_maker: async_sessionmaker[AsyncSession] = field(init=False)
    scoped_session_maker: async_sessionmaker[AsyncSession] = field(init=False)
    loaders: Loaders = field(init=False)
    # Whether a mutation of this request or connection has run (its response says so).
    wrote: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        # A WebSocket keeps one context for all its operations, and its subscriptions' loads
        # must see the changes they deliver: it reads the primary.
        target = (
            self.replicas.primary
            if self.is_websocket
            else self.replicas.target(self.writer, wrote_recently=self.wrote_recently)
        )
        self._read_from(target)

    @property
    def writer(self) -> Hashable:
        """Whom this request's mutations are noted for (read-your-writes)."""
        return writer_key(self.principal, self.client_address)

    def read_from_primary(self) -> None:
        """Read the primary from now on (a mutation, a subscription)."""
        if self.read_target.is_replica:
            self._read_from(self.replicas.primary)

    def read_again_on_primary(self, errors: Sequence[GraphQLError] | None) -> bool:
        """Whether an operation that read a replica and ended with `errors` should run again
        on the primary (it only read, so running it twice is safe): the replica went out of
        reach (it is skipped from now on) or cancelled the read. If so, reads go there now."""
        if not self.read_target.is_replica:
            return False
        for error in errors or ():
            original = error.original_error
            if original is not None and self.replicas.failed(self.read_target, original):
                self._read_from(self.replicas.primary)
                return True
        return False

    def note_write(self) -> None:
        """The caller has just run a mutation: its reads go to the primary for a while."""
        self.wrote = True
        self.replicas.note_write(self.writer)

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

    def _read_from(self, target: ReadTarget) -> None:
        self.read_target = target
        self.unscoped_session_maker = target.session_maker
        self._scope_sessions()

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


class PrimaryForWrites(SchemaExtension):
    """Mutations and subscriptions read the primary (a mutation's selection shows what it
    wrote; a subscription's loads, the change it delivers), and a mutation sends its caller's
    reads to the primary for the read-your-writes window, whether or not it succeeded."""

    def on_execute(self) -> Iterator[None]:
        execution_context = self.execution_context
        context = execution_context.context
        if not isinstance(context, Context) or execution_context.graphql_document is None:
            yield
            return
        operation_type = execution_context.operation_type
        if operation_type is not OperationType.QUERY:
            context.read_from_primary()
        if operation_type is not OperationType.SUBSCRIPTION:  # not once per event delivered
            context.replicas.count(context.read_target)
        try:
            yield
        finally:
            if operation_type is OperationType.MUTATION:
                context.note_write()
