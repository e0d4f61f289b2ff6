"""Service settings, read from the environment and validated once at start."""

from __future__ import annotations

import re
import secrets
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

NumberT = TypeVar("NumberT", int, float)
SettingT = TypeVar("SettingT")

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./pomreport.db"

# How long an SQLite connection waits for another connection's write lock before its statement
# fails with SQLITE_BUSY ("database is locked"), unless told otherwise.
DEFAULT_SQLITE_BUSY_TIMEOUT_MS = 5_000

# A plain URL names the store; the service always talks to it through its async driver.
_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}


@dataclass(frozen=True, slots=True)
class QueryLimits:
    """Largest operation the service runs; each is configurable."""

    max_depth: int = 12
    max_aliases: int = 30
    max_complexity: int = 50_000
    max_tokens: int = 2_000
    max_page_size: int = 500


DEFAULT_QUERY_LIMITS = QueryLimits()


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A token bucket: `per_second` requests a second on average, `burst` at once."""

    per_second: float
    burst: int


class SettingsError(ValueError):
    """A setting has a value the service cannot run with; the message says which and why."""


def parse_database_url(raw: str, variable: str = "DATABASE_URL") -> URL:
    """Parse an SQLAlchemy URL and map it to the async driver of its store."""
    try:
        url = make_url(raw)
    except ArgumentError:
        raise SettingsError(
            f"{variable} {raw!r} is not a database URL; expected e.g. "
            "sqlite+aiosqlite:///./pomreport.db or postgresql+asyncpg://user@host:5432/db"
        ) from None
    driver = _ASYNC_DRIVERS.get(url.drivername)
    if driver is None:
        raise SettingsError(
            f"{variable} uses {url.drivername!r}, which pomreport does not support; "
            "use sqlite+aiosqlite:// or postgresql+asyncpg://"
        )
    url = url.set(drivername=driver)
    if driver == "sqlite+aiosqlite" and url.database in (None, "", ":memory:"):
        # Every connection to an in-memory database sees a different, empty database.
        raise SettingsError(f"{variable} must name an SQLite file, not an in-memory database")
    if driver == "postgresql+asyncpg" and not url.database:
        raise SettingsError(f"{variable} must name a PostgreSQL database, e.g. .../pomreport")
    return url


def parse_replica_urls(raw: str, variable: str = "DATABASE_REPLICA_URL") -> tuple[URL, ...]:
    """Parse one or several comma-separated PostgreSQL URLs of read replicas (a comma inside
    a password is written %2C)."""
    urls = tuple(
        parse_database_url(item.strip(), variable) for item in raw.split(",") if item.strip()
    )
    if any(url.get_backend_name() != "postgresql" for url in urls):
        # SQLite has no replication: a second file would be another database.
        raise SettingsError(
            f"{variable} names an SQLite file; read replicas need PostgreSQL streaming "
            "replicas (postgresql://...) of the PostgreSQL DATABASE_URL"
        )
    return tuple(dict.fromkeys(urls))


def parse_positive_seconds(raw: str, variable: str) -> float:
    """Parse a number of seconds above 0."""
    value = parse_seconds(raw, variable)
    if value == 0:
        raise SettingsError(f"{variable} must be above 0, got {raw}")
    return value


def parse_time_zone(raw: str, variable: str) -> str:
    """Check that a name is a known IANA time zone."""
    try:
        zoneinfo.ZoneInfo(raw)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # "America" is a directory
        raise SettingsError(
            f"{variable} {raw!r} is not an IANA time zone such as Europe/Berlin"
        ) from None
    return raw


def parse_port(raw: str, variable: str) -> int:
    """Parse a TCP port number."""
    port = _number(raw, variable, int, "a port number")
    if not 0 < port < 65536:
        raise SettingsError(f"{variable} {port} is out of range 1..65535")
    return port


def parse_positive_int(raw: str, variable: str) -> int:
    """Parse a whole number of at least 1."""
    value = _number(raw, variable, int, "a whole number")
    if value < 1:
        raise SettingsError(f"{variable} must be at least 1, got {value}")
    return value


def parse_flag(raw: str, variable: str) -> bool:
    """Parse true/false (also 1/0, yes/no, on/off)."""
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{variable} {raw!r} is not true or false")


def parse_redis_url(raw: str | None, variable: str = "REDIS_URL") -> str | None:
    """Check a Redis URL's scheme."""
    if raw is None:
        return None
    if not raw.startswith(("redis://", "rediss://", "unix://")):
        raise SettingsError(f"{variable} {raw!r} is not a redis:// or rediss:// URL")
    return raw


def parse_rate_limit(raw: str, variable: str) -> RateLimit:
    """Parse `RATE,BURST`: requests a second on average (a number above 0) and how many may
    come at once (a whole number of at least 1), e.g. `20,100`."""
    rate, comma, burst = raw.partition(",")
    wanted = "RATE,BURST (requests a second, and at once), e.g. 20,100"
    if not comma:
        raise SettingsError(f"{variable} {raw!r} is not {wanted}")
    per_second = _number(rate.strip(), variable, float, wanted)
    if not 0 < per_second < float("inf"):
        raise SettingsError(f"{variable} needs a rate above 0, got {rate.strip()}")
    return RateLimit(per_second, parse_positive_int(burst.strip(), variable))


def parse_seconds(raw: str, variable: str) -> float:
    """Parse a non-negative number of seconds."""
    value = _number(raw, variable, float, "a number of seconds")
    if not value >= 0:
        raise SettingsError(f"{variable} must not be negative, got {raw}")
    return value


_DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST = re.compile(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?")


def parse_cors_origins(raw: str, variable: str) -> tuple[str, ...]:
    """Parse a comma-separated list of web origins (`https://host[:port]`), each written as
    browsers send it in `Origin`: scheme and host in lower case, no default port."""
    origins = (_origin(item.strip(), variable) for item in raw.split(",") if item.strip())
    return tuple(dict.fromkeys(origins))


def _origin(raw: str, variable: str) -> str:
    """One origin as browsers serialise it; anything else (a path, a wildcard) refused."""
    if raw == "*":
        # Every page a user opens could then call the API from the user's browser: in open
        # development mode that is an admin's rights for any web site.
        raise SettingsError(
            f"{variable} may not be '*': list each origin allowed to call the API, e.g. "
            "https://wallboard.example.com"
        )
    wanted = "an origin such as https://wallboard.example.com (scheme, host, optional port)"
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:
        raise SettingsError(f"{variable} entry {raw!r} is not {wanted}") from None
    if parts.username is not None or parts.password is not None:
        # Not echoed: what looks like a password should not land in a log.
        raise SettingsError(
            f"{variable} has an entry with a user name or password; each entry must be {wanted}"
        )
    scheme, host = parts.scheme.lower(), parts.hostname or ""
    # Browsers send host names in ASCII (an IDN as its xn-- form), IPv6 addresses bracketed.
    if scheme not in _DEFAULT_PORTS or not (_HOST.fullmatch(host) or ":" in host):
        raise SettingsError(f"{variable} entry {raw!r} is not {wanted}")
    if parts.path or parts.query or parts.fragment or raw.endswith(("?", "#")):
        base = f"{parts.scheme}://{parts.netloc}"
        raise SettingsError(
            f"{variable} entry {raw!r} is not an origin: an origin has no path, query or "
            f"fragment; did you mean {base!r}?"
        )
    host = f"[{host}]" if ":" in host else host  # an IPv6 address keeps its brackets
    shown_port = "" if port is None or port == _DEFAULT_PORTS[scheme] else f":{port}"
    return f"{scheme}://{host}{shown_port}"


# Shortest POMREPORT_URL_SIGNING_SECRET accepted: 32 characters of a random token carry at least
# the 128 bits an HMAC key needs to be beyond guessing.
MIN_SIGNING_SECRET_LENGTH = 32


def parse_signing_secret(raw: str, variable: str) -> str:
    """Check that a signing secret is long enough to be a random key, not a password."""
    if len(raw) < MIN_SIGNING_SECRET_LENGTH:
        raise SettingsError(
            f"{variable} must be at least {MIN_SIGNING_SECRET_LENGTH} characters, got "
            f"{len(raw)}; make one with: python3 -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'"
        )
    return raw


def random_signing_secret() -> str:
    """A signing secret of this process alone, for when none is configured."""
    return secrets.token_urlsafe(32)


def _number(raw: str, variable: str, parse: Callable[[str], NumberT], what: str) -> NumberT:
    try:
        return parse(raw)
    except ValueError:
        raise SettingsError(f"{variable} {raw!r} is not {what}") from None


def _variable(variable: str, parse: Callable[[str, str], Any]) -> dict[str, Any]:
    return {"variable": variable, "parse": parse}


def _read(variable: str, parse: Callable[[str, str], SettingT], default: SettingT) -> SettingT:
    """A setting read from environment `variable` by `parse`; `default` when it is unset or
    empty."""
    return field(default=default, metadata=_variable(variable, parse))


def _text(raw: str, _variable: str) -> str:
    return raw


def parse_path(raw: str, _variable: str) -> Path:
    """A file's path, `~` expanded; the file itself is read where it is used."""
    return Path(raw).expanduser()


_DEFAULT_URL = parse_database_url(DEFAULT_DATABASE_URL)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the service reads from its environment; each setting names its variable."""

    # Required here; only the environment falls back to ./pomreport.db.
    database_url: URL = field(metadata=_variable("DATABASE_URL", parse_database_url))
    # Streaming replicas of DATABASE_URL (PostgreSQL only) that queries, the report, summaries
    # and the CSV export read from; mutations and everything right after them read the primary.
    database_replica_urls: tuple[URL, ...] = _read("DATABASE_REPLICA_URL", parse_replica_urls, ())
    # After a caller's mutation, its reads go to the primary for this long, so that it sees
    # its own writes whatever the replicas' lag (at least POMREPORT_REPLICA_MAX_LAG_SECONDS).
    read_your_writes_seconds: float = _read(
        "POMREPORT_READ_YOUR_WRITES_SECONDS", parse_seconds, 5.0
    )
    # A replica further behind the primary than this is skipped until it catches up.
    replica_max_lag_seconds: float = _read("POMREPORT_REPLICA_MAX_LAG_SECONDS", parse_seconds, 2.0)
    # How often each replica's reachability and lag are measured.
    replica_check_seconds: float = _read(
        "POMREPORT_REPLICA_CHECK_SECONDS", parse_positive_seconds, 1.0
    )
    report_time_zone: str = _read("POMREPORT_REPORT_TIMEZONE", parse_time_zone, "UTC")
    host: str = _read("POMREPORT_HOST", _text, "127.0.0.1")
    port: int = _read("POMREPORT_PORT", parse_port, 8000)
    # Processes `serve` runs on the port; more than one needs PostgreSQL or REDIS_URL.
    workers: int = _read("POMREPORT_WORKERS", parse_positive_int, 1)
    # Largest `first`/`last` a connection accepts; more is an error, never a silent cut.
    max_page_size: int = _read("POMREPORT_MAX_PAGE_SIZE", parse_positive_int, 500)
    # Longest "Between" period the report accepts, in days.
    max_report_days: int = _read("POMREPORT_MAX_REPORT_DAYS", parse_positive_int, 366)
    # Status-change events travel through Redis when set.
    redis_url: str | None = _read("REDIS_URL", parse_redis_url, None)
    # How often `serve` expires due callbacks; 0 turns the sweeper off.
    expiry_sweep_seconds: float = _read("POMREPORT_EXPIRY_SWEEP_SECONDS", parse_seconds, 30.0)
    # Changes a subscriber may have waiting before it is closed as too slow.
    subscriber_backlog: int = _read("POMREPORT_SUBSCRIBER_BACKLOG", parse_positive_int, 1000)
    # Days the change log keeps each status change (the history, and how far back a
    # subscription can resume); older ones are pruned in the background.
    change_log_retention_days: int = _read(
        "POMREPORT_CHANGE_LOG_RETENTION_DAYS", parse_positive_int, 7
    )
    # How often the relay looks for committed changes no transport took (a crash between
    # commit and publish, a Redis outage) and publishes them.
    relay_seconds: float = _read("POMREPORT_RELAY_SECONDS", parse_seconds, 2.0)
    # Largest request body /graphql reads; more is refused with 413.
    max_body_bytes: int = _read("POMREPORT_MAX_BODY_BYTES", parse_positive_int, 1_048_576)
    # Longest a single SQL statement may run before it is cancelled (PostgreSQL's
    # statement_timeout; on SQLite a progress handler interrupts it); SERVICE_UNAVAILABLE then.
    statement_timeout_ms: int = _read("POMREPORT_STATEMENT_TIMEOUT_MS", parse_positive_int, 10_000)
    # Longest an SQLite write waits for the write lock (SQLite's busy timeout); then it is
    # answered SERVICE_UNAVAILABLE (HTTP 503, Retry-After) instead of "database is locked".
    sqlite_busy_timeout_ms: int = _read(
        "POMREPORT_SQLITE_BUSY_TIMEOUT_MS", parse_positive_int, DEFAULT_SQLITE_BUSY_TIMEOUT_MS
    )
    # Database connections one process holds at most (a report uses two: rows and total).
    # Enough for some 32 requests in flight at once: a saturated process resumes a request
    # whose statement finished only when its turn comes, so a connection is held for longer
    # than its SQL (at 20, 3 of 472 reports of 500 rows at 32 concurrent got a 503).
    pool_size: int = _read("POMREPORT_POOL_SIZE", parse_positive_int, 40)
    # Longest a request waits for a free connection; then it is answered SERVICE_UNAVAILABLE
    # (HTTP 503, Retry-After) instead of queueing without bound behind a saturated pool.
    pool_timeout_seconds: float = _read("POMREPORT_POOL_TIMEOUT_SECONDS", parse_seconds, 1.5)
    # Whether clients may introspect the schema (GraphiQL needs it); off for production.
    introspection: bool = _read("POMREPORT_INTROSPECTION", parse_flag, True)
    # Queries answered from compiled plans (service.compiled); off, every field runs through
    # the general executor. Both give the same answers; the compiled path is the fast one.
    compiled_execution: bool = _read("POMREPORT_COMPILED_EXECUTION", parse_flag, True)
    # Serve direct clients without authentication while the database holds no API key;
    # `serve` turns this on for loopback addresses (open development mode). Not a variable.
    open_without_keys: bool = False
    # The operator's override: serve without keys on any address, proxied requests included
    # (for a proxy in front that authenticates).
    allow_unauthenticated: bool = _read("POMREPORT_ALLOW_UNAUTHENTICATED", parse_flag, False)
    # How long a checked API key is trusted before it is looked up again (revocation delay).
    api_key_cache_seconds: float = _read("POMREPORT_API_KEY_CACHE_SECONDS", parse_seconds, 10.0)
    # Web origins (https://host[:port]) whose pages may call /graphql and the CSV download
    # from a browser (CORS); none by default, so browsers keep other origins' pages out.
    cors_origins: tuple[str, ...] = _read("POMREPORT_CORS_ORIGINS", parse_cors_origins, ())
    # Bearer key /metrics needs; None serves it to anyone who can reach it.
    metrics_key: str | None = _read("POMREPORT_METRICS_KEY", _text, None)
    # Key of the HMAC that signs download links (the report's csvUrl). Unset, each Settings
    # (so each process) makes its own random one: links then work only on the process that
    # signed them, so several instances behind one address need it set, to the same value
    # (`serve --workers N` shares one among its workers by itself). Never shown or compared.
    url_signing_secret: str = field(
        default_factory=random_signing_secret,
        metadata=_variable("POMREPORT_URL_SIGNING_SECRET", parse_signing_secret),
        repr=False,
        compare=False,
    )
    # permessage-deflate on WebSockets. Off by default: a change is a frame of a few hundred
    # bytes, and compression costs each connection about 40 KiB of zlib state and each frame
    # CPU time (bench/README.md, subscription fan-out).
    websocket_compression: bool = _read("POMREPORT_WEBSOCKET_COMPRESSION", parse_flag, False)
    # A WebSocket that sends no connection_init (its key) within this is closed (4408).
    websocket_init_timeout_seconds: float = _read(
        "POMREPORT_WEBSOCKET_INIT_TIMEOUT_SECONDS", parse_seconds, 10.0
    )
    # On SIGTERM, requests still streaming (subscriptions over HTTP) get this long to end
    # before `serve` closes them; WebSockets are closed at once with 1012.
    shutdown_timeout_seconds: int = _read(
        "POMREPORT_SHUTDOWN_TIMEOUT_SECONDS", parse_positive_int, 10
    )
    # Requests one API key may make, per role: a token bucket per key (shared by every
    # instance through Redis when REDIS_URL is set). High enough that no dashboard or
    # script working at a person's pace meets it; it stops a runaway loop. Off: no limit.
    rate_limits: bool = _read("POMREPORT_RATE_LIMITS", parse_flag, True)
    rate_limit_viewer: RateLimit = field(
        default=RateLimit(20, 100),
        metadata=_variable("POMREPORT_RATE_LIMIT_VIEWER", parse_rate_limit),
    )
    rate_limit_agent: RateLimit = field(
        default=RateLimit(20, 100),
        metadata=_variable("POMREPORT_RATE_LIMIT_AGENT", parse_rate_limit),
    )
    rate_limit_operator: RateLimit = field(
        default=RateLimit(50, 250),
        metadata=_variable("POMREPORT_RATE_LIMIT_OPERATOR", parse_rate_limit),
    )
    rate_limit_admin: RateLimit = field(
        default=RateLimit(100, 500),
        metadata=_variable("POMREPORT_RATE_LIMIT_ADMIN", parse_rate_limit),
    )
    # The start of every name the service uses in Redis (its events channel, the rate limits'
    # buckets): deployments (or tests) sharing one Redis but not one database need prefixes
    # of their own, or they would hear each other's changes and share buckets.
    redis_prefix: str = _read("POMREPORT_REDIS_PREFIX", _text, "pomreport:")
    # Allow-list mode: the manifest (hash -> document) of the only documents the service runs;
    # anything else is refused before it is parsed. Unset, any valid document runs.
    trusted_documents: Path | None = field(
        default=None, metadata=_variable("POMREPORT_TRUSTED_DOCUMENTS", parse_path)
    )
    max_query_depth: int = _read(
        "POMREPORT_MAX_QUERY_DEPTH", parse_positive_int, DEFAULT_QUERY_LIMITS.max_depth
    )
    max_query_aliases: int = _read(
        "POMREPORT_MAX_QUERY_ALIASES", parse_positive_int, DEFAULT_QUERY_LIMITS.max_aliases
    )
    max_query_complexity: int = _read(
        "POMREPORT_MAX_QUERY_COMPLEXITY", parse_positive_int, DEFAULT_QUERY_LIMITS.max_complexity
    )
    max_query_tokens: int = _read(
        "POMREPORT_MAX_QUERY_TOKENS", parse_positive_int, DEFAULT_QUERY_LIMITS.max_tokens
    )

    def __post_init__(self) -> None:
        if self.database_replica_urls and self.is_sqlite:
            raise SettingsError(
                "DATABASE_REPLICA_URL is set but DATABASE_URL is SQLite, which has no "
                "replicas: unset DATABASE_REPLICA_URL, or use PostgreSQL with streaming replicas"
            )
        if self.database_replica_urls and (
            self.replica_max_lag_seconds <= self.replica_check_seconds
        ):
            # Lag is measured against the primary's position at the check: a replica a few
            # milliseconds behind steady writes shows up to one check interval.
            raise SettingsError(
                f"POMREPORT_REPLICA_MAX_LAG_SECONDS ({self.replica_max_lag_seconds:g}) must be "
                f"more than POMREPORT_REPLICA_CHECK_SECONDS ({self.replica_check_seconds:g}): "
                "a replica that keeps up with steady writes is measured up to one check "
                "behind, and would take no reads"
            )
        if self.database_replica_urls and (
            self.read_your_writes_seconds
            < self.replica_max_lag_seconds + self.replica_check_seconds
        ):
            # A replica admitted with a lag up to the bound, as measured up to one check ago,
            # may not have a write younger than that yet.
            raise SettingsError(
                f"POMREPORT_READ_YOUR_WRITES_SECONDS ({self.read_your_writes_seconds:g}) must "
                "be at least POMREPORT_REPLICA_MAX_LAG_SECONDS plus "
                f"POMREPORT_REPLICA_CHECK_SECONDS ({self.replica_max_lag_seconds:g} + "
                f"{self.replica_check_seconds:g}), or a caller could miss its own writes on a "
                "replica"
            )

    @property
    def query_limits(self) -> QueryLimits:
        """The operation limits the schema enforces."""
        return QueryLimits(
            max_depth=self.max_query_depth,
            max_aliases=self.max_query_aliases,
            max_complexity=self.max_query_complexity,
            max_tokens=self.max_query_tokens,
            max_page_size=self.max_page_size,
        )

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Settings:
        """Build settings from environment variables, rejecting bad values with a clear message."""
        values = {
            setting.name: setting.metadata["parse"](environ[variable], variable)
            for setting in fields(cls)
            if (variable := setting.metadata.get("variable")) and environ.get(variable)
        }
        values.setdefault("database_url", _DEFAULT_URL)
        return cls(**values)

    @property
    def is_sqlite(self) -> bool:
        """Whether the store is the embedded SQLite database."""
        return self.database_url.get_backend_name() == "sqlite"


def describe_url(url: URL) -> str:
    """Render a database URL for messages, without its password."""
    return url.render_as_string(hide_password=True)
