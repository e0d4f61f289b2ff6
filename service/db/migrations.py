"""Alembic, driven from the service: upgrade, downgrade and drift checks against one database."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext, MigrationInfo
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

# Alembic's script directory (env.py, script.py.mako, versions/). It is migrations/ at the
# repository root, installed as this package (pyproject.toml maps it): inside the wheel, or
# the checkout's folder itself under an editable install.
SCRIPTS_PACKAGE = "service.db.migration_scripts"


def script_directory() -> Path:
    """Where the installed package keeps Alembic's scripts."""
    spec = importlib.util.find_spec(SCRIPTS_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        if (Path(location) / "env.py").is_file():
            return Path(location)
    raise RuntimeError(
        f"{SCRIPTS_PACKAGE} is not installed with its env.py (found {locations}); "
        "install pomreport (make install) rather than running it from an uninstalled tree"
    )


def alembic_config(database_url: URL) -> Config:
    """Build an Alembic configuration aimed at one database."""
    config = Config()
    config.set_main_option("script_location", str(script_directory()))
    config.set_main_option("file_template", "%%(year)d-%%(month).2d-%%(day).2d_%%(slug)s_%%(rev)s")
    config.attributes["database_url"] = database_url
    return config


def upgrade_to_head(database_url: URL) -> list[str]:
    """Apply every migration the database has not seen yet; returns the revisions applied, in
    order (none when the database was at the latest schema already)."""
    config = alembic_config(database_url)
    applied: list[str] = []

    def record(*, step: MigrationInfo, **_context: object) -> None:
        applied.append(step.up_revision_id or "")

    config.attributes["on_version_apply"] = record
    command.upgrade(config, "head")
    return applied


def head_revision(database_url: URL) -> str:
    """The latest migration's revision."""
    head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
    return head or "base"


def downgrade_to_base(database_url: URL) -> None:
    """Undo every migration, leaving an empty database."""
    command.downgrade(alembic_config(database_url), "base")


def check_models_match_migrations(database_url: URL) -> None:
    """Raise when the models differ from what the migrations build (autogenerate drift)."""
    command.check(alembic_config(database_url))


async def schema_is_current(engine: AsyncEngine, database_url: URL) -> bool:
    """Whether the database has every migration applied."""
    script = ScriptDirectory.from_config(alembic_config(database_url))
    async with engine.connect() as connection:
        applied = await connection.run_sync(
            lambda sync_connection: MigrationContext.configure(sync_connection).get_current_heads()
        )
    return set(applied) == set(script.get_heads())
