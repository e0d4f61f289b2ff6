"""What every resolver of a request can reach: settings, sessions, events and loaders."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from strawberry.extensions import SchemaExtension

from service.events.callback_events import CallbackEvents
from service.graph.loaders import Loaders
from service.settings import Settings


@dataclass(slots=True)
class Context:
    """Per-request context; resolvers open their own short sessions from the session makers."""

    settings: Settings
    session_maker: async_sessionmaker[AsyncSession]
    write_session_maker: async_sessionmaker[AsyncSession]
    events: CallbackEvents
    loaders: Loaders

    def refresh_loaders(self) -> None:
        """Start over with empty loaders (each subscription event sees current rows)."""
        self.loaders = Loaders(self.session_maker)


Info = strawberry.Info[Context, None]


class FreshLoadersPerOperation(SchemaExtension):
    """Every operation starts with empty loaders: a WebSocket connection keeps one context for
    all its operations, and a query on it must not see rows cached by an earlier one."""

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context.context
        if isinstance(context, Context):
            context.refresh_loaders()
        yield
