"""The `pomreport` command: migrate, seed, serve, apikey, export-schema, trusted-documents."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import dataclasses
import datetime as dt
import gc
import importlib.metadata
import ipaddress
import os
import re
import socket
import sqlite3
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import uvicorn
import uvicorn.config
from alembic.util import CommandError as AlembicCommandError
from sqlalchemy import exists, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from service.app import create_app, load_allow_list
from service.auth.api_keys import (
    ApiKeyError,
    create_api_key,
    list_api_keys,
    revoke_api_key,
    rotate_api_key,
)
from service.clock import utc_now
from service.db.engines import create_engine, create_session_maker
from service.db.migrations import head_revision, schema_is_current, upgrade_to_head
from service.db.models import Agent
from service.db.models.api_key import ApiKey, Role
from service.graph.trusted_documents import (
    SHIPPED_MANIFEST,
    ManifestError,
    build_manifest,
    load_trusted_documents,
    manifest_text,
)
from service.metrics import MULTIPROCESS_DIRECTORY, prepare_multiprocess_directory
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
        if settings.is_sqlite and command not in _WITHOUT_DATABASE:
            _open_sqlite_file(settings)
        return command(settings, arguments)
    except SettingsError as error:
        print(f"pomreport: configuration error: {error}", file=sys.stderr)
        return 2
    except (PomreportCommandError, SeedError, ApiKeyError, ManifestError) as error:
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
    parser.add_argument("--version", action="version", version=f"pomreport {_version()}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    migrate = _command(
        commands,
        "migrate",
        "upgrade the database to the latest schema",
        "Apply every migration the database (DATABASE_URL) has not seen yet, and say which; "
        "a database at the latest schema is left as it is. Run it before `serve`, after each "
        "upgrade of pomreport.",
    )
    migrate.set_defaults(command=_migrate)

    seed = _command(
        commands,
        "seed",
        "load deterministic demo data into an empty database",
        "Load campaigns, jobs, agents, contacts, callbacks and their attempts, the same rows "
        "for the same --seed and --as-of, into a migrated database that holds no data.",
    )
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

    serve = _command(
        commands,
        "serve",
        "serve /graphql, /healthz and /readyz",
        "Serve the GraphQL API (with GraphiQL) at /graphql, and /healthz and /readyz, on a "
        "migrated database. Without any API key it serves loopback addresses only, as admin "
        "(open development mode).",
    )
    serve.add_argument("--host", help="address to listen on (default POMREPORT_HOST or 127.0.0.1)")
    serve.add_argument(
        "--port", type=_port, help="port to listen on (default POMREPORT_PORT or 8000)"
    )
    serve.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        help="serve on a non-loopback address although no API key exists (only behind a proxy "
        "that authenticates; also POMREPORT_ALLOW_UNAUTHENTICATED=true)",
    )
    serve.add_argument(
        "--workers",
        type=_positive_int,
        help="processes serving the port, one per core (default POMREPORT_WORKERS or 1); more "
        "than one needs events that cross processes: PostgreSQL or REDIS_URL",
    )
    serve.set_defaults(command=_serve)

    apikey = _command(
        commands,
        "apikey",
        "create, list, rotate and revoke API keys",
        "Manage the API keys requests authenticate with (Authorization: Bearer <key>).",
    )
    apikey_commands = apikey.add_subparsers(required=True, metavar="ACTION")
    create = _command(
        apikey_commands,
        "create",
        "issue a key and print it (only once)",
        "Issue a key with a role and print it; only its hash is stored, so it cannot be shown "
        "again.",
    )
    create.add_argument(
        "--role", required=True, choices=[role.value for role in Role], help="what the key may do"
    )
    create.add_argument("--agent-id", help="the agent an agent key acts as (agent role only)")
    create.add_argument("--name", default="", help="who or what the key is for")
    create.add_argument(
        "--expires-in",
        type=_lifetime,
        help="how long the key works, e.g. 90d, 12h or 30m (default: until revoked)",
    )
    create.set_defaults(command=_apikey_create)
    listing = _command(
        apikey_commands,
        "list",
        "list keys (never the keys themselves)",
        "List every key's id, role, agent, name, creation, expiry, revocation and last use "
        "(written at most once a minute, so up to a minute behind).",
    )
    listing.set_defaults(command=_apikey_list)
    revoke = _command(
        apikey_commands,
        "revoke",
        "revoke a key for good",
        "Revoke a key: requests with it are refused within POMREPORT_API_KEY_CACHE_SECONDS, "
        "open WebSockets included.",
    )
    revoke.add_argument("key_id", type=_positive_int, help="the key's id, as `apikey list` shows")
    revoke.set_defaults(command=_apikey_revoke)
    rotate = _command(
        apikey_commands,
        "rotate",
        "replace a key, keeping the old one for a grace period",
        "Issue a new key with the old one's role, agent and name, print it (only once), and "
        "let the old key work for the grace period more, so clients can switch over.",
    )
    rotate.add_argument("key_id", type=_positive_int, help="the key's id, as `apikey list` shows")
    rotate.add_argument(
        "--grace",
        type=_duration,
        default=dt.timedelta(hours=24),
        help="how long the old key keeps working, e.g. 24h, 7d or 0 (default 24h)",
    )
    rotate.add_argument(
        "--expires-in",
        type=_lifetime,
        help="how long the new key works, e.g. 90d (default: until revoked)",
    )
    rotate.set_defaults(command=_apikey_rotate)

    export = _command(
        commands,
        "export-schema",
        "print the GraphQL schema (SDL)",
        "Print the schema served at /graphql in GraphQL SDL (what schema.graphql holds); "
        "needs no database.",
    )
    export.set_defaults(command=_export_schema)

    trusted = _command(
        commands,
        "trusted-documents",
        "build and check manifests of trusted documents (allow-list mode)",
        "Manage manifests for POMREPORT_TRUSTED_DOCUMENTS, the allow-list mode: only the "
        "documents of the manifest run. A manifest is Apollo's persisted query manifest; each "
        "document's id is the SHA-256 of its exact text. Needs no database.",
    )
    trusted_commands = trusted.add_subparsers(required=True, metavar="ACTION")
    build = _command(
        trusted_commands,
        "build",
        "build a manifest from .graphql files",
        "Build a manifest from .graphql files (each file is one document, sent by clients "
        "exactly as it is written: one operation, and the fragments it uses), folders of them "
        "(searched recursively) and other manifests (merged in). Every document must validate "
        "against the schema.",
    )
    build.add_argument(
        "sources", nargs="+", type=Path, metavar="SOURCE", help=".graphql file, folder or manifest"
    )
    build.add_argument(
        "--output", "-o", type=Path, help="the manifest file to write (default: standard output)"
    )
    build.set_defaults(command=_trusted_documents_build)
    check = _command(
        trusted_commands,
        "check",
        "check a manifest as `serve` would",
        "Read a manifest and check each document against the schema, as `serve` does at start "
        "with POMREPORT_TRUSTED_DOCUMENTS, and say how many documents it holds.",
    )
    check.add_argument("manifest", type=Path, help="the manifest file")
    check.set_defaults(command=_trusted_documents_check)
    shipped = _command(
        trusted_commands,
        "shipped",
        "print the path of the manifest shipped with pomreport",
        "Print the path of the manifest pomreport ships: the documents of the report page and "
        "the README's examples, e.g. for POMREPORT_TRUSTED_DOCUMENTS=$(pomreport "
        "trusted-documents shipped), or as a source of `build`.",
    )
    shipped.set_defaults(command=_trusted_documents_shipped)
    return parser


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    summary: str,
    description: str,
) -> argparse.ArgumentParser:
    """A subcommand with its one-line summary (in the command list) and its description (in
    its own --help)."""
    return commands.add_parser(name, help=summary, description=description)


def _version() -> str:
    try:
        return importlib.metadata.version("pomreport")
    except importlib.metadata.PackageNotFoundError:  # run from a tree that is not installed
        return "unknown"


def _migrate(settings: Settings, _arguments: argparse.Namespace) -> int:
    applied = upgrade_to_head(settings.database_url)
    database = describe_url(settings.database_url)
    head = head_revision(settings.database_url)
    if applied:
        print(
            f"pomreport: applied {len(applied)} migration{'s' if len(applied) > 1 else ''} "
            f"to {database} ({', '.join(applied)}); it is at the latest schema ({head})"
        )
    else:
        print(f"pomreport: {database} was at the latest schema ({head}) already; nothing to do")
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
    host = arguments.host or settings.host
    port = arguments.port or settings.port
    workers = arguments.workers or settings.workers
    if settings.trusted_documents is not None:
        # Checked before anything starts (each of several workers would fail on its own).
        load_allow_list(
            settings, create_schema(settings.query_limits, introspection=settings.introspection)
        )
    _check_port_free(host, port)
    if workers > 1 and settings.is_sqlite and not settings.redis_url:
        raise PomreportCommandError(
            f"--workers {workers} needs status-change events that reach every process, and on "
            "SQLite they stay inside one: serve one worker, use PostgreSQL (DATABASE_URL), or "
            "set REDIS_URL"
        )
    keys_exist = asyncio.run(_check_database_ready(settings))
    allow_unauthenticated = arguments.allow_unauthenticated or settings.allow_unauthenticated
    if not keys_exist and not (allow_unauthenticated or is_loopback(host)):
        raise PomreportCommandError(
            f"no API key exists, so serving on {host} would let anyone in. Create one with "
            "`pomreport apikey create --role admin`, serve on 127.0.0.1, or pass "
            "--allow-unauthenticated if a proxy in front of pomreport authenticates"
        )
    if not keys_exist:
        print(OPEN_MODE_BANNER.format(host=host), file=sys.stderr, flush=True)
    if workers > 1:
        # Each worker is a new process that builds its own app from the environment; their
        # metrics meet in a directory (kept only while serving, unless the operator names one).
        os.environ.update(
            POMREPORT_HOST=host,
            POMREPORT_PORT=str(port),
            POMREPORT_ALLOW_UNAUTHENTICATED=str(allow_unauthenticated).lower(),
            # A download link one worker signs must work on whichever worker it reaches.
            POMREPORT_URL_SIGNING_SECRET=settings.url_signing_secret,
        )
        with tempfile.TemporaryDirectory(prefix="pomreport-metrics-") as metrics_directory:
            os.environ.setdefault(MULTIPROCESS_DIRECTORY, metrics_directory)
            prepare_multiprocess_directory(Path(os.environ[MULTIPROCESS_DIRECTORY]))
            _run_uvicorn(
                "service.cli:worker_app", settings, host, port, factory=True, workers=workers
            )
        return 0
    app = create_app(served_settings(settings, host, allow_unauthenticated))
    freeze_long_lived_objects()
    _run_uvicorn(app, settings, host, port)
    return 0


def log_config(terminal: bool | None = None) -> dict[str, Any]:
    """uvicorn's logging with the request ID on every line (`-` outside a request), and the
    service's own loggers (a line per GraphQL request among them) written the same way: as
    JSON lines, unless the output is a terminal (`terminal`, by default whether stderr is),
    where a person reads them."""
    config: dict[str, Any] = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["filters"] = {
        "request_id": {"()": "service.request_ids.RequestIdLogFilter"},
        "link_tokens": {"()": "service.access_log.LinkTokenRedaction"},
    }
    for handler in config["handlers"].values():
        handler["filters"] = ["request_id"]
    config["handlers"]["access"]["filters"].append("link_tokens")
    formatters = config["formatters"]
    if terminal if terminal is not None else sys.stderr.isatty():
        formatters["default"]["fmt"] = "%(levelprefix)s [%(request_id)s] %(message)s"
        formatters["access"]["fmt"] = (
            '%(levelprefix)s [%(request_id)s] %(client_addr)s - "%(request_line)s" %(status_code)s'
        )
    else:
        json_lines = {"()": "service.request_ids.JsonLogFormatter"}
        formatters["default"] = formatters["access"] = json_lines
    config["loggers"]["service"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def _check_port_free(host: str, port: int) -> None:
    """Refuse at once, before any banner, when the address is taken (uvicorn would say so only
    after the app started)."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, _, _, _, address = addresses[0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            # As uvicorn binds: a port left in TIME_WAIT is free, one with a listener is not.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as error:
        raise PomreportCommandError(
            f"cannot listen on {host}:{port}: {error.strerror or error}"
        ) from None


def _run_uvicorn(
    app: Starlette | str, settings: Settings, host: str, port: int, **options: Any
) -> None:
    """uvicorn with the service's logging, shutdown timeout and WebSocket compression."""
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="info",
        log_config=log_config(),
        timeout_graceful_shutdown=settings.shutdown_timeout_seconds,
        ws_per_message_deflate=settings.websocket_compression,
        **options,
    )


def served_settings(settings: Settings, host: str, allow_unauthenticated: bool) -> Settings:
    """The settings `serve` runs with: open development mode on loopback addresses only."""
    return dataclasses.replace(
        settings, open_without_keys=is_loopback(host), allow_unauthenticated=allow_unauthenticated
    )


def worker_app() -> Starlette:
    """The app of one `serve --workers N` process, from the environment `serve` prepared."""
    settings = Settings.from_environment(os.environ)
    app = create_app(served_settings(settings, settings.host, settings.allow_unauthenticated))
    freeze_long_lived_objects()
    return app


# A report page allocates tens of thousands of short-lived objects (rows, values, the
# response), nearly all freed by reference counting; at Python's default of 700 allocations
# the collector ran some thirty young-generation passes per request for almost nothing.
YOUNG_GENERATION_THRESHOLD = 20_000
# Young passes before a middle-generation pass (Python's default is 10). What a subscription
# change allocates lives until the change is delivered: 10,000 subscribers' wake-ups survive a
# few young passes, and at the default they reached the old generation, whose full passes
# then scan every subscriber's objects (1.3 s at 10,000 subscribers) every 30 to 50 changes.
# At 100 they are gone before a middle pass promotes them (bench/README.md, fan-out).
MIDDLE_GENERATION_THRESHOLD = 100


def freeze_long_lived_objects() -> None:
    """Keep what lives as long as the process (modules, the schema) out of the collector's
    full passes, which otherwise scan it again and again (report p95 156 -> 65 ms), and let
    the young and middle generations grow before they are collected."""
    gc.collect()
    gc.freeze()
    _, _, old = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, MIDDLE_GENERATION_THRESHOLD, old)


OPEN_MODE_BANNER = """
************************************************************************************
* pomreport: OPEN DEVELOPMENT MODE on {host}: no API key exists, so every request
* runs as admin without a key. To require keys: pomreport apikey create --role admin
************************************************************************************
"""


def is_loopback(host: str) -> bool:
    """Whether an address only this machine can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


async def _check_database_ready(settings: Settings) -> bool:
    """Refuse to serve a database that is unreachable or not migrated; say whether keys exist."""
    async with _session_maker(settings) as session_maker, session_maker() as session:
        return bool(await session.scalar(select(exists().where(ApiKey.id.is_not(None)))))


def _apikey_create(settings: Settings, arguments: argparse.Namespace) -> int:
    async def create() -> tuple[ApiKey, str, bool]:
        async with _session_maker(settings) as session_maker:
            row, key = await create_api_key(
                session_maker,
                Role(arguments.role),
                agent_id=arguments.agent_id,
                name=arguments.name,
                expires_at=_expiry(arguments.expires_in),
            )
            async with session_maker() as session:
                known = row.agent_id is None or await session.get(Agent, row.agent_id) is not None
            return row, key, known

    row, key, agent_known = asyncio.run(create())
    if not agent_known:
        print(
            f"pomreport: note: no agent {row.agent_id} in the database yet; the key sees that "
            "agent's callbacks as they arrive",
            file=sys.stderr,
        )
    print(
        f"pomreport: created API key {row.id} ({_describe_key(row)}); "
        "it is shown once, keep it now:",
        file=sys.stderr,
    )
    print(key)
    return 0


def _apikey_list(settings: Settings, _arguments: argparse.Namespace) -> int:
    async def listing() -> list[ApiKey]:
        async with _session_maker(settings) as session_maker:
            return await list_api_keys(session_maker)

    rows = asyncio.run(listing())
    if not rows:
        print("pomreport: no API keys; `pomreport apikey create --role ROLE` issues one")
        return 0
    now = utc_now()
    print(
        f"{'ID':>4}  {'PREFIX':<14}{'ROLE':<10}{'AGENT':<12}{'CREATED':<22}{'EXPIRES':<30}"
        f"{'REVOKED':<22}{'LAST USED':<22}NAME"
    )
    for row in rows:
        revoked = _minutes(row.revoked_at) if row.revoked_at else "-"
        # Written at most once a minute, so up to a minute behind (service.auth.key_usage).
        last_used = _minutes(row.last_used_at) if row.last_used_at else "never"
        print(
            f"{row.id:>4}  {row.key_prefix + '…':<14}{row.role.value:<10}{row.agent_id or '-':<12}"
            f"{_minutes(row.created_at):<22}{_describe_expiry(row, now):<30}{revoked:<22}"
            f"{last_used:<22}{row.name}"
        )
    return 0


def _describe_expiry(row: ApiKey, now: dt.datetime) -> str:
    if row.expires_at is None:
        return "-"
    return ("expired " if row.expires_at <= now else "") + _minutes(row.expires_at)


def _apikey_revoke(settings: Settings, arguments: argparse.Namespace) -> int:
    async def revoke() -> ApiKey:
        async with _session_maker(settings) as session_maker:
            return await revoke_api_key(session_maker, arguments.key_id)

    row = asyncio.run(revoke())
    print(
        f"pomreport: revoked API key {row.id} ({_describe_key(row)}); running servers refuse it "
        f"within {settings.api_key_cache_seconds:g} s"
    )
    return 0


def _apikey_rotate(settings: Settings, arguments: argparse.Namespace) -> int:
    async def rotate() -> tuple[ApiKey, str, ApiKey]:
        async with _session_maker(settings) as session_maker:
            return await rotate_api_key(
                session_maker,
                arguments.key_id,
                grace=arguments.grace,
                expires_at=_expiry(arguments.expires_in),
            )

    row, key, old = asyncio.run(rotate())
    assert old.expires_at is not None  # rotation always sets it
    print(
        f"pomreport: rotated API key {old.id} to API key {row.id} ({_describe_key(row)}); the "
        f"old key works until {_minutes(old.expires_at)} (running servers may accept it up to "
        f"{settings.api_key_cache_seconds:g} s longer). The new key is shown once, keep it now:",
        file=sys.stderr,
    )
    print(key)
    return 0


def _expiry(lifetime: dt.timedelta | None) -> dt.datetime | None:
    return None if lifetime is None else utc_now() + lifetime


def _describe_key(row: ApiKey) -> str:
    agent = f" for agent {row.agent_id}" if row.agent_id else ""
    name = f" {row.name!r}" if row.name else ""
    expires = f", expires {_minutes(row.expires_at)}" if row.expires_at else ""
    return f"{row.key_prefix}…, role {row.role.value}{agent}{name}{expires}"


def _minutes(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


@contextlib.asynccontextmanager
async def _session_maker(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on a migrated database, for one command; on SQLite it waits for `serve`'s
    writes as long as `serve` waits for others (POMREPORT_SQLITE_BUSY_TIMEOUT_MS)."""
    engine = create_engine(
        settings.database_url, sqlite_busy_timeout_ms=settings.sqlite_busy_timeout_ms
    )
    try:
        if not await schema_is_current(engine, settings.database_url):
            raise PomreportCommandError(
                f"the database {describe_url(settings.database_url)} is not at the latest "
                "schema; run `pomreport migrate` first"
            )
        yield create_session_maker(engine)
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


def _trusted_documents_build(_settings: Settings, arguments: argparse.Namespace) -> int:
    manifest = build_manifest(arguments.sources, create_schema()._schema)
    text = manifest_text(manifest)
    if arguments.output is None:
        sys.stdout.write(text)
        return 0
    arguments.output.write_text(text, encoding="utf-8")
    print(
        f"pomreport: wrote {len(manifest['operations'])} trusted documents to {arguments.output}",
        file=sys.stderr,
    )
    return 0


def _trusted_documents_check(settings: Settings, arguments: argparse.Namespace) -> int:
    schema = create_schema(settings.query_limits, introspection=settings.introspection)
    documents = load_trusted_documents(arguments.manifest, schema._schema)
    print(f"pomreport: {arguments.manifest} holds {len(documents)} trusted documents, all valid")
    return 0


def _trusted_documents_shipped(_settings: Settings, _arguments: argparse.Namespace) -> int:
    print(SHIPPED_MANIFEST)
    return 0


# Commands that never open the database (the SQLite file is not created for them).
_WITHOUT_DATABASE = {
    _export_schema,
    _trusted_documents_build,
    _trusted_documents_check,
    _trusted_documents_shipped,
}


def _positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


# A duration as people write it for keys: a whole number of days, hours or minutes.
_DURATION = re.compile(r"(\d+)([dhm])")
_DURATION_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def _duration(raw: str) -> dt.timedelta:
    """A duration such as 90d, 24h or 30m; 0 alone is no time at all."""
    if raw.strip() == "0":
        return dt.timedelta(0)
    match = _DURATION.fullmatch(raw.strip().lower())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"{raw!r} is not a duration: write a whole number and d, h or m, e.g. 90d, 24h, 30m"
        )
    return dt.timedelta(**{_DURATION_UNITS[match[2]]: int(match[1])})


def _lifetime(raw: str) -> dt.timedelta:
    """A duration a key lives: more than none."""
    value = _duration(raw)
    if not value:
        raise argparse.ArgumentTypeError(f"{raw!r} would expire the key at once")
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
