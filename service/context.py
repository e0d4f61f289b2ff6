"""What every resolver of a request can reach: settings, sessions and the request's loaders."""

from __future__ import annotations

from dataclasses import dataclass

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.graph.loaders import Loaders
from service.settings import Settings


@dataclass(slots=True)
class Context:
    """Per-request context; resolvers open their own short sessions from `session_maker`."""

    settings: Settings
    session_maker: async_sessionmaker[AsyncSession]
    loaders: Loaders


Info = strawberry.Info[Context, None]


def build_context(settings: Settings, session_maker: async_sessionmaker[AsyncSession]) -> Context:
    """Create a request's context with fresh loaders."""
    return Context(settings=settings, session_maker=session_maker, loaders=Loaders(session_maker))
