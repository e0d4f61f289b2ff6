from __future__ import annotations

import pytest

from service.settings import RateLimit, Settings, SettingsError


def test_settings_defaults_to_sqlite_file_through_aiosqlite() -> None:
    settings = Settings.from_environment({})
    assert settings.database_url.drivername == "sqlite+aiosqlite"
    assert settings.database_url.database == "./pomreport.db"
    assert (settings.report_time_zone, settings.host, settings.port) == ("UTC", "127.0.0.1", 8000)
    assert settings.is_sqlite


@pytest.mark.parametrize(
    ("raw", "driver"),
    [
        ("postgresql://u@h:5432/db", "postgresql+asyncpg"),
        ("postgres://u@h/db", "postgresql+asyncpg"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg"),
        ("sqlite:///x.db", "sqlite+aiosqlite"),
        ("sqlite+aiosqlite:////tmp/x.db", "sqlite+aiosqlite"),
    ],
)
def test_settings_maps_plain_urls_to_async_drivers(raw: str, driver: str) -> None:
    settings = Settings.from_environment({"DATABASE_URL": raw})
    assert settings.database_url.drivername == driver


PRIMARY = "postgresql://u@primary/db"


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({"DATABASE_URL": "not a url"}, "is not a database URL"),
        ({"DATABASE_URL": "mysql://u@h/db"}, "does not support"),
        ({"DATABASE_URL": "sqlite://"}, "not an in-memory database"),
        ({"DATABASE_URL": "postgresql://u@h"}, "must name a PostgreSQL database"),
        ({"POMREPORT_REPORT_TIMEZONE": "Mars/Olympus"}, "not an IANA time zone"),
        ({"POMREPORT_REPORT_TIMEZONE": "../etc/passwd"}, "not an IANA time zone"),
        ({"POMREPORT_PORT": "eighty"}, "not a port number"),
        ({"POMREPORT_PORT": "70000"}, "out of range"),
        ({"POMREPORT_URL_SIGNING_SECRET": "password"}, "at least 32 characters, got 8"),
        ({"POMREPORT_CORS_ORIGINS": "foo"}, "'foo' is not an origin such as https://"),
        ({"POMREPORT_CORS_ORIGINS": "http://x/path"}, "no path.*did you mean 'http://x'"),
        ({"POMREPORT_CORS_ORIGINS": "https://a.example.com/"}, "did you mean"),
        ({"POMREPORT_CORS_ORIGINS": "https://a.example.com, *"}, "may not be '\\*'"),
        ({"POMREPORT_CORS_ORIGINS": "ftp://a.example.com"}, "is not an origin"),
        ({"POMREPORT_CORS_ORIGINS": "wallboard.example.com:443"}, "is not an origin"),
        ({"POMREPORT_CORS_ORIGINS": "https://a.example.com:99999"}, "is not an origin"),
        ({"POMREPORT_CORS_ORIGINS": "https://me:secret@a.example.com"}, "user name or password"),
        ({"POMREPORT_RATE_LIMIT_VIEWER": "20"}, "'20' is not RATE,BURST"),
        ({"POMREPORT_RATE_LIMIT_AGENT": "fast,100"}, "is not RATE,BURST"),
        ({"POMREPORT_RATE_LIMIT_OPERATOR": "0,100"}, "needs a rate above 0, got 0"),
        ({"POMREPORT_RATE_LIMIT_ADMIN": "10,0"}, "must be at least 1, got 0"),
        ({"POMREPORT_RATE_LIMIT_ADMIN": "10,2.5"}, "is not a whole number"),
        ({"POMREPORT_RATE_LIMITS": "maybe"}, "is not true or false"),
        ({"DATABASE_REPLICA_URL": "postgresql://u@h/db"}, "DATABASE_URL is SQLite, which has no"),
        (
            {"DATABASE_URL": PRIMARY, "DATABASE_REPLICA_URL": "sqlite:///./replica.db"},
            "read replicas need PostgreSQL streaming replicas",
        ),
        (
            {
                "DATABASE_URL": PRIMARY,
                "DATABASE_REPLICA_URL": "postgresql://u@r1/db,mysql://u@r2/db",
            },
            "DATABASE_REPLICA_URL uses 'mysql'",
        ),
        (
            {
                "DATABASE_URL": PRIMARY,
                "DATABASE_REPLICA_URL": "postgresql://u@r1/db",
                "POMREPORT_READ_YOUR_WRITES_SECONDS": "2",
            },
            r"must be at least POMREPORT_REPLICA_MAX_LAG_SECONDS plus .* \(2 \+ 1\)",
        ),
        ({"POMREPORT_REPLICA_CHECK_SECONDS": "0"}, "must be above 0"),
        (
            {
                "DATABASE_URL": PRIMARY,
                "DATABASE_REPLICA_URL": "postgresql://u@r1/db",
                "POMREPORT_REPLICA_MAX_LAG_SECONDS": "1",
            },
            r"POMREPORT_REPLICA_MAX_LAG_SECONDS \(1\) must be more than .* \(1\)",
        ),
    ],
)
def test_settings_rejects_bad_values_with_the_reason(
    environment: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_environment(environment)


def test_settings_reads_time_zone_host_and_port() -> None:
    settings = Settings.from_environment(
        {
            "POMREPORT_REPORT_TIMEZONE": "Europe/Berlin",
            "POMREPORT_HOST": "0.0.0.0",
            "POMREPORT_PORT": "9000",
        }
    )
    assert (settings.report_time_zone, settings.host, settings.port) == (
        "Europe/Berlin",
        "0.0.0.0",
        9000,
    )


def test_settings_reads_the_sqlite_busy_timeout() -> None:
    assert Settings.from_environment({}).sqlite_busy_timeout_ms == 5_000
    environment = {"POMREPORT_SQLITE_BUSY_TIMEOUT_MS": "250"}
    assert Settings.from_environment(environment).sqlite_busy_timeout_ms == 250
    with pytest.raises(SettingsError, match="POMREPORT_SQLITE_BUSY_TIMEOUT_MS must be at least 1"):
        Settings.from_environment({"POMREPORT_SQLITE_BUSY_TIMEOUT_MS": "0"})


def test_settings_signing_secret_is_read_or_made_and_never_shown() -> None:
    secret = "s" * 40
    settings = Settings.from_environment({"POMREPORT_URL_SIGNING_SECRET": secret})
    assert settings.url_signing_secret == secret
    assert secret not in repr(settings)
    # Unset, each Settings makes its own: links then work only in the process that signed them.
    made, other = Settings.from_environment({}), Settings.from_environment({})
    assert len(made.url_signing_secret) >= 32
    assert made.url_signing_secret != other.url_signing_secret
    assert made == other, "the secret takes no part in comparing settings"


def test_settings_never_repeat_what_looks_like_a_password_in_an_origin() -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_environment({"POMREPORT_CORS_ORIGINS": "https://me:secret@a.example.com"})
    assert "secret" not in str(refused.value)


def test_settings_cors_origins_are_read_as_browsers_send_them() -> None:
    assert Settings.from_environment({}).cors_origins == ()
    settings = Settings.from_environment(
        {
            "POMREPORT_CORS_ORIGINS": "HTTPS://Wallboard.Example.com:443, http://localhost:3000,"
            " http://[::1]:8080, https://wallboard.example.com"
        }
    )
    assert settings.cors_origins == (
        "https://wallboard.example.com",
        "http://localhost:3000",
        "http://[::1]:8080",
    )


def test_settings_rate_limits_per_role_default_and_read() -> None:
    defaults = Settings.from_environment({})
    assert defaults.rate_limits is True
    assert (
        defaults.rate_limit_viewer,
        defaults.rate_limit_agent,
        defaults.rate_limit_operator,
        defaults.rate_limit_admin,
    ) == (RateLimit(20, 100), RateLimit(20, 100), RateLimit(50, 250), RateLimit(100, 500))
    settings = Settings.from_environment(
        {
            "POMREPORT_RATE_LIMITS": "false",
            "POMREPORT_RATE_LIMIT_VIEWER": " 0.5 , 10 ",
            "POMREPORT_REDIS_PREFIX": "staging:",
        }
    )
    assert settings.rate_limits is False
    assert settings.rate_limit_viewer == RateLimit(0.5, 10)
    assert settings.redis_prefix == "staging:"


def test_settings_read_replicas_one_or_several() -> None:
    assert Settings.from_environment({"DATABASE_URL": PRIMARY}).database_replica_urls == ()
    settings = Settings.from_environment(
        {
            "DATABASE_URL": PRIMARY,
            "DATABASE_REPLICA_URL": "postgresql://u:p%2Cq@r1:5433/db, postgres://u@r2/db,",
            "POMREPORT_READ_YOUR_WRITES_SECONDS": "10",
            "POMREPORT_REPLICA_MAX_LAG_SECONDS": "5",
        }
    )
    assert [url.render_as_string(False) for url in settings.database_replica_urls] == [
        "postgresql+asyncpg://u:p%2Cq@r1:5433/db",
        "postgresql+asyncpg://u@r2/db",
    ]
    assert settings.database_replica_urls[0].password == "p,q"
    assert (settings.read_your_writes_seconds, settings.replica_max_lag_seconds) == (10, 5)
    assert settings.replica_check_seconds == 1
