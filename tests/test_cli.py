from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from service.cli import _build_parser
from service.db.migrations import head_revision
from service.schema import create_schema


def _pomreport(
    *arguments: str, database_url: str | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    if database_url is not None:
        environment["DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *arguments],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("command", ["migrate", "serve"])
@pytest.mark.parametrize(
    ("database_url", "message"),
    [
        pytest.param("no-such-scheme", "is not a database URL", id="malformed"),
        pytest.param("mysql://u@127.0.0.1/db", "does not support", id="unsupported"),
        pytest.param(
            "postgresql://postgres@127.0.0.1:1/test", "cannot use the database", id="unreachable"
        ),
        pytest.param(
            "sqlite:////nonexistent-directory/pomreport.db", "unable to open", id="unwritable"
        ),
    ],
)
def test_cli_bad_database_ends_with_one_clear_line(
    command: str, database_url: str, message: str
) -> None:
    result = _pomreport(command, database_url=database_url)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert lines[0].startswith("pomreport: ")
    assert "Traceback" not in result.stderr


def test_cli_serve_refuses_a_database_that_is_not_migrated(empty_database_url: URL) -> None:
    url = empty_database_url.render_as_string(hide_password=False)
    result = _pomreport("serve", "--port", "1", database_url=url)
    assert result.returncode == 1
    assert "run `pomreport migrate` first" in result.stderr


def test_cli_migrate_then_seed_reports_what_it_did(empty_database_url: URL) -> None:
    url = empty_database_url.render_as_string(hide_password=False)
    migrated = _pomreport("migrate", database_url=url)
    assert migrated.returncode == 0, migrated.stderr
    head = head_revision(empty_database_url)
    assert "pomreport: applied " in migrated.stdout
    assert migrated.stdout.rstrip().endswith(f"it is at the latest schema ({head})")
    again = _pomreport("migrate", database_url=url)
    assert again.returncode == 0
    assert f"was at the latest schema ({head}) already; nothing to do" in again.stdout
    assert "applied" not in again.stdout
    seeded = _pomreport("seed", "--callbacks", "300", "--seed", "2", database_url=url)
    assert seeded.returncode == 0, seeded.stderr
    assert "seeded 300 callbacks" in seeded.stdout
    assert "300/300 callbacks" in seeded.stderr
    again = _pomreport("seed", "--callbacks", "300", "--if-empty", database_url=url)
    assert again.returncode == 0
    assert "nothing seeded" in again.stdout
    refused = _pomreport("seed", "--callbacks", "300", database_url=url)
    assert refused.returncode == 1
    assert "already holds" in refused.stderr


def test_cli_seed_rejects_a_bad_count() -> None:
    result = _pomreport("seed", "--callbacks", "0")
    assert result.returncode == 2
    assert "is not at least 1" in result.stderr


def test_cli_export_schema_prints_the_served_schema() -> None:
    result = _pomreport("export-schema")
    assert result.returncode == 0
    assert result.stdout.strip() == create_schema().as_str().strip()


def test_cli_version_prints_the_installed_version() -> None:
    result = _pomreport("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"pomreport {importlib.metadata.version('pomreport')}"


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> dict[tuple[str, ...], argparse.ArgumentParser]:
    """Every command path of the parser, ("migrate",), ("apikey", "create"), ..., with the
    parser whose help `pomreport <path> --help` prints."""
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, subparser in action.choices.items():
                found[(*path, name)] = subparser
                found.update(_commands(subparser, (*path, name)))
    return found


def test_cli_every_command_describes_itself_in_its_help() -> None:
    # The parsers' own help texts: what --help prints, without a process per command.
    commands = _commands(_build_parser())
    assert ("migrate",) in commands
    assert ("apikey", "revoke") in commands
    for command, parser in commands.items():
        text = parser.format_help()
        _usage, _, rest = text.partition("\n\n")
        description = rest.split("\n\n")[0]
        assert not description.startswith(("options:", "positional arguments:")), (command, text)
        assert len(description.split()) >= 8, (command, text)


def test_cli_help_is_what_the_command_prints() -> None:
    result = _pomreport("apikey", "create", "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout == _commands(_build_parser())[("apikey", "create")].format_help()


def test_cli_serve_on_a_busy_port_says_so_before_anything_else(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        result = _pomreport(
            "serve", "--port", str(port), database_url=f"sqlite:///{tmp_path / 'busy.db'}"
        )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"pomreport: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]


def test_cli_trusted_documents_build_writes_a_manifest_serve_accepts(tmp_path: Path) -> None:
    (tmp_path / "queries").mkdir()
    (tmp_path / "queries" / "Total.graphql").write_text(
        "query Total { callbacksScheduledDetails { totalRecords } }\n"
    )
    manifest = tmp_path / "manifest.json"
    shipped = _pomreport("trusted-documents", "shipped").stdout.strip()
    result = _pomreport(
        "trusted-documents", "build", str(tmp_path / "queries"), shipped, "-o", str(manifest)
    )
    assert result.returncode == 0, result.stderr
    operations = json.loads(manifest.read_text())["operations"]
    assert {entry["name"] for entry in operations} >= {"Total", "ReportPage"}
    checked = _pomreport("trusted-documents", "check", str(manifest))
    assert checked.returncode == 0, checked.stderr
    assert f"holds {len(operations)} trusted documents" in checked.stdout


def test_cli_trusted_documents_build_names_the_file_that_does_not_validate(
    tmp_path: Path,
) -> None:
    (tmp_path / "Wrong.graphql").write_text("{ callbacksScheduledDetails { nope } }")
    result = _pomreport("trusted-documents", "build", str(tmp_path))
    assert result.returncode == 1
    assert "Wrong.graphql does not validate against the schema" in result.stderr
    assert "nope" in result.stderr


def test_cli_serve_with_a_manifest_it_cannot_use_says_so(tmp_path: Path) -> None:
    environment = {**os.environ, "POMREPORT_TRUSTED_DOCUMENTS": str(tmp_path / "missing.json")}
    result = subprocess.run(
        [sys.executable, "-m", "service.cli", "serve", "--port", "1"],
        capture_output=True,
        text=True,
        env={**environment, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}"},
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("pomreport: configuration error: POMREPORT_TRUSTED_DOCUMENTS")
    assert "missing.json" in result.stderr


def test_cli_serve_refuses_read_replicas_of_sqlite(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "service.cli", "serve", "--port", "1"],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
            "DATABASE_REPLICA_URL": "postgresql://postgres@127.0.0.1:5433/pomreport",
        },
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr == (
        "pomreport: configuration error: DATABASE_REPLICA_URL is set but DATABASE_URL is "
        "SQLite, which has no replicas: unset DATABASE_REPLICA_URL, or use PostgreSQL with "
        "streaming replicas\n"
    )
    assert not (tmp_path / "db.sqlite").exists()
