"""The service's log: a line per committed mutation (which, by whose key, what it changed), a
line per expiry sweep, and JSON lines with the request's fields when not on a terminal."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import URL

from service.access_log import redact_link_tokens
from service.reports.callbacks_scheduled_details.csv_links import CSV_PATH
from service.request_ids import REQUEST_ID, JsonLogFormatter
from service.settings import Settings
from tests.callbacks.test_rules import _schedule, _setup
from tests.graphql_client import GraphQLClient, serve_graphql
from tests.serve_process import serving


def test_each_committed_mutation_is_logged_with_its_key_and_changes(
    empty_graphql: GraphQLClient, caplog: pytest.LogCaptureFixture
) -> None:
    _setup(empty_graphql)
    with caplog.at_level(logging.INFO, logger="service.mutations"):
        _schedule(empty_graphql, "CB1")
        _schedule(empty_graphql, "CB2")  # the same call: CB1 is overwritten
    records = [record for record in caplog.records if record.name == "service.mutations"]
    assert [record.__dict__["mutation"] for record in records] == [
        "scheduleCallback",
        "scheduleCallback",
    ]
    assert records[1].__dict__["status_changes"] == [
        {"callback_id": "CB1", "previous_status": "ACTIVE", "status": "OVERWRITTEN"},
        {"callback_id": "CB2", "previous_status": None, "status": "ACTIVE"},
    ]
    assert records[1].__dict__["role"] == "admin"  # open development mode
    # No argument values: neither the call nor the times the input gave (only what changed).
    logged = str(records[1].__dict__)
    assert "CALL-1" not in logged
    assert "callId" not in logged


def test_each_expiry_sweep_is_logged(database_url: URL, caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(
        database_url=database_url, expiry_sweep_seconds=0.05, open_without_keys=True
    )
    with (
        caplog.at_level(logging.INFO, logger="service.callbacks.expiry_sweeper"),
        contextlib.contextmanager(serve_graphql)(settings),
    ):
        deadline = time.monotonic() + 10
        while not any("expiry sweep:" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, "no sweep was logged"
            time.sleep(0.05)
    sweep = next(r for r in caplog.records if "expiry sweep:" in r.getMessage())
    assert sweep.__dict__["status_changes"] == 0


def test_json_lines_carry_the_request_id_and_the_fields_given() -> None:
    record = logging.LogRecord(
        "service.requests", logging.INFO, __file__, 1, "%s done", ("x",), None
    )
    record.outcome = "ok"
    record.statements = 2
    token = REQUEST_ID.set("req-9")
    try:
        line = json.loads(JsonLogFormatter().format(record))
    finally:
        REQUEST_ID.reset(token)
    assert line["message"] == "x done"
    assert (line["request_id"], line["outcome"], line["statements"]) == ("req-9", "ok", 2)
    assert line["level"] == "info"
    assert line["logger"] == "service.requests"


@pytest.mark.parametrize(
    ("path", "logged"),
    [
        (
            "/r.csv?a=1&token=1765000000.7.c2lnbmF0dXJl&b=2",
            "/r.csv?a=1&token=1765000000.7.[redacted]&b=2",
        ),
        ("/r.csv?token=no-dots", "/r.csv?token=[redacted]"),
        ("/r.csv?token=1.open.x&token=2", "/r.csv?token=1.open.[redacted]&token=[redacted]"),
        ("/r.csv?notatoken=1.2.3", "/r.csv?notatoken=1.2.3"),
        ("/graphql", "/graphql"),
    ],
)
def test_a_link_tokens_signature_is_redacted(path: str, logged: str) -> None:
    assert redact_link_tokens(path) == logged


def test_serve_never_writes_a_csv_links_signature_to_the_access_log(tmp_path: Path) -> None:
    signature = "U0VDUkVUU0lHTkFUVVJF"
    with serving(tmp_path) as server, httpx.Client(base_url=server.base_url) as client:
        refused = client.get(f"{CSV_PATH}?timePeriod=Last+Week&token=1765000000.open.{signature}")
        assert refused.status_code == 401
    log = server.log.read_text()
    assert f"{CSV_PATH}?timePeriod=Last+Week&token=1765000000.open.[redacted]" in log
    assert signature not in log
