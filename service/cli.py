"""The `pomreport` command: migrate, seed, serve, export-schema."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import sqlite3
import sys
from collections.abc import Callable, Sequence

import asyncpg
import uvicorn
from alembic.util import CommandError as AlembicCommandError
from sqlalchemy.exc import SQLAlchemyError

from service.app import create_app
from service.database_migrations import schema_is_current, upgrade_to_head
from service.db import create_engine
from service.schema import create_schema
from service.seed.bulk_insert import SeedError, seed_database
from service.seed.demo_data import SeedPlan, default_as_of
from service.settings import Settings, SettingsError, describe_url, parse_port

# What a missing, refusing or broken database raises, whichever driver meets it first.
DATABASE_ERRORS = (
    OSError,
    SQLAlchemyError,
    asyncpg.PostgresError,
    sqlite3.Error,
    AlembicCommandError,
)


class PomreportCommandError(Exception):
    """Ends the command with one line on stderr and a non-zero status."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `pomreport` command line."""
    parser = _build_parser()
    arguments = parser.parse_args(argv)
    command: Callable[[Settings, argparse.Namespace], int] = arguments.command
    try:
        settings = Settings.from_environment(os.environ)
        if settings.is_sqlite and command is not _export_schema:
            _open_sqlite_file(settings)
        return command(settings, arguments)
    except SettingsError as error:
        print(f"pomreport: configuration error: {error}", file=sys.stderr)
        return 2
    except (PomreportCommandError, SeedError) as error:
        print(f"pomreport: {error}", file=sys.stderr)
        return 1
    except DATABASE_ERRORS as error:
        url = describe_url(Settings.from_environment(os.environ).database_url)
        print(f"pomreport: cannot use the database {url}: {_first_line(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pomreport",
        description="GraphQL service for the POM Callbacks Scheduled Details report. "
        "The database comes from DATABASE_URL (default: SQLite file ./pomreport.db).",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    migrate = commands.add_parser("migrate", help="upgrade the database to the latest schema")
    migrate.set_defaults(command=_migrate)

    seed = commands.add_parser("seed", help="load deterministic demo data into an empty database")
    seed.add_argument("--callbacks", type=_positive_int, required=True, help="how many callbacks")
    seed.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    seed.add_argument(
        "--as-of",
        type=_aware_datetime,
        default=None,
        help="the 'now' of the data, ISO 8601 (default: this hour); same seed and as-of, same rows",
    )
    seed.add_argument(
        "--if-empty", action="store_true", help="do nothing when the database holds data"
    )
    seed.set_defaults(command=_seed)

    serve = commands.add_parser("serve", help="serve /graphql, /healthz and /readyz")
    serve.add_argument("--host", help="address to listen on (default POMREPORT_HOST or 127.0.0.1)")
    serve.add_argument(
        "--port", type=_port, help="port to listen on (default POMREPORT_PORT or 8000)"
    )
    serve.set_defaults(command=_serve)

    export = commands.add_parser("export-schema", help="print the GraphQL schema (SDL)")
    export.set_defaults(command=_export_schema)
    return parser


def _migrate(settings: Settings, _arguments: argparse.Namespace) -> int:
    upgrade_to_head(settings.database_url)
    print(f"pomreport: {describe_url(settings.database_url)} is at the latest schema")
    return 0


def _seed(settings: Settings, arguments: argparse.Namespace) -> int:
    as_of = arguments.as_of or default_as_of(dt.datetime.now(dt.UTC))
    plan = SeedPlan(callbacks=arguments.callbacks, seed=arguments.seed, as_of=as_of)
    summary = asyncio.run(
        seed_database(
            settings.database_url,
            plan,
            if_empty=arguments.if_empty,
            progress=lambda message: print(f"seed: {message}", file=sys.stderr, flush=True),
        )
    )
    if summary.skipped:
        print("pomreport: the database already holds data; nothing seeded")
    else:
        print(
            f"pomreport: seeded {summary.callbacks:,} callbacks and {summary.attempts:,} attempts "
            f"(seed {plan.seed}, as of {plan.as_of.isoformat()}) in {summary.seconds:.1f} s"
        )
    return 0


def _serve(settings: Settings, arguments: argparse.Namespace) -> int:
    asyncio.run(_check_database_ready(settings))
    host = arguments.host or settings.host
    port = arguments.port or settings.port
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
    return 0


async def _check_database_ready(settings: Settings) -> None:
    """Refuse to serve a database that is unreachable or not migrated."""
    engine = create_engine(settings.database_url)
    try:
        if not await schema_is_current(engine, settings.database_url):
            raise PomreportCommandError(
                f"the database {describe_url(settings.database_url)} is not at the latest "
                "schema; run `pomreport migrate` first"
            )
    finally:
        await engine.dispose()


def _open_sqlite_file(settings: Settings) -> None:
    """Open the SQLite file with the standard driver first: an unusable path then fails here,
    synchronously, instead of inside aiosqlite's worker thread."""
    connection = sqlite3.connect(settings.database_url.database or "")
    try:
        connection.execute("PRAGMA schema_version")
    finally:
        connection.close()


def _export_schema(_settings: Settings, _arguments: argparse.Namespace) -> int:
    print(create_schema().as_str())
    return 0


def _positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


def _port(raw: str) -> int:
    try:
        return parse_port(raw, "--port")
    except SettingsError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _aware_datetime(raw: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not an ISO 8601 time") from None
    # Times without an offset are UTC, as everywhere in pomreport.
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    detail = lines[0] if lines else type(error).__name__
    # SQLAlchemy prefixes the driver's exception class; the driver's words are what help.
    if detail.startswith("(") and ") " in detail:
        detail = detail.split(") ", 1)[1]
    return detail


if __name__ == "__main__":
    sys.exit(main())
