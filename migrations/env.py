"""Alembic environment: runs migrations through the service's async engine on either store."""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import URL, Connection

from service.db.engines import create_engine
from service.db.models import Base
from service.settings import Settings

config = context.config
target_metadata = Base.metadata


def _database_url() -> URL:
    url = config.attributes.get("database_url")
    if isinstance(url, URL):
        return url
    return Settings.from_environment(os.environ).database_url


def _run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        # Set by service.db.migrations.upgrade_to_head to learn what was applied.
        on_version_apply=config.attributes.get("on_version_apply"),
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    engine = create_engine(_database_url())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_migrations)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_database_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_online())
