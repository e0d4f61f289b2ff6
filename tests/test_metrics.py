"""/metrics (SPEC 6): Prometheus text that `prometheus_client.parser` reads, whose counters,
histograms and gauges move with what the service does, behind a key when one is set, and
added up over the workers of `serve --workers N`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import URL
from sqlalchemy.pool import QueuePool

from service.settings import Settings
from tests.callbacks.test_rules import _schedule, _setup
from tests.events.test_subscription import _subscribe, wait_for_subscribers
from tests.graphql_client import GraphQLClient, serve_graphql
from tests.serve_process import serving

QUERY = "query Agents { agents(first: 2) { totalCount edges { node { agentId } } } }"


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _scrape(api: GraphQLClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = api.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return _samples(response.text)


def test_requests_statements_and_errors_are_counted(empty_graphql: GraphQLClient) -> None:
    before = _scrape(empty_graphql)
    statements = 0
    for _ in range(3):  # the first plans the query, the others take the compiled endpoint
        empty_graphql.data(QUERY)
        statements += len(empty_graphql.statements)  # counted apart, per request
    refused = empty_graphql.post("{ callbacks(first: 501) { totalCount } }")
    assert refused.status_code == 400
    after = _scrape(empty_graphql)

    def moved(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    counted = {"operation_type": "query", "operation_name": "Agents", "outcome": "ok"}
    assert moved("pomreport_graphql_requests_total", **counted) == 3
    refusal = {"operation_type": "query", "operation_name": "", "outcome": "BAD_USER_INPUT"}
    assert moved("pomreport_graphql_requests_total", **refusal) == 1
    timed = "pomreport_graphql_request_duration_seconds_count"
    assert moved(timed, operation_type="query") == 4
    assert moved("pomreport_sql_statements_per_request_count") == 4
    # The statement count per request adds up to what the database saw.
    assert moved("pomreport_sql_statements_per_request_sum") == statements


def test_subscriptions_websockets_and_events_are_counted(empty_graphql: GraphQLClient) -> None:
    _setup(empty_graphql)
    before = _scrape(empty_graphql)
    with empty_graphql.client.websocket_connect(
        "/graphql", subprotocols=["graphql-transport-ws"]
    ) as websocket:
        _subscribe(websocket, {})
        wait_for_subscribers(empty_graphql, 1)
        during = _scrape(empty_graphql)
        _schedule(empty_graphql, "CB-M1")
        assert websocket.receive_json()["type"] == "next"
        delivered = _scrape(empty_graphql)
        websocket.send_json({"id": "1", "type": "complete"})
    wait_for_subscribers(empty_graphql, 0)
    after = _scrape(empty_graphql)
    for gauge in ("pomreport_subscriptions_active", "pomreport_websockets_open"):
        assert _value(during, gauge) == _value(before, gauge) + 1, gauge
        assert _value(after, gauge) == _value(before, gauge), gauge
    for counter in ("pomreport_events_published_total", "pomreport_events_delivered_total"):
        assert _value(delivered, counter) == _value(before, counter) + 1, counter


def test_pool_connections_are_shown(empty_graphql: GraphQLClient) -> None:
    empty_graphql.data(QUERY)
    samples = _scrape(empty_graphql)
    pool = empty_graphql.client.app.state.engine.sync_engine.pool  # type: ignore[attr-defined]
    if not isinstance(pool, QueuePool):
        pytest.skip("this store's pool keeps no connections to show")
    assert _value(samples, "pomreport_db_connections_open") == pool.checkedin() >= 1
    assert _value(samples, "pomreport_db_connections_checked_out") == 0  # all given back


@pytest.fixture
def keyed_metrics(database_url: URL) -> Iterator[GraphQLClient]:
    yield from serve_graphql(
        Settings(
            database_url=database_url,
            expiry_sweep_seconds=0,
            open_without_keys=True,
            metrics_key="scrape-secret",
        )
    )


def test_metrics_need_their_key_when_one_is_set(keyed_metrics: GraphQLClient) -> None:
    client = keyed_metrics.client
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "scrape-secret"}):
        refused = client.get("/metrics", headers=headers)
        assert refused.status_code == 401
        assert "pomreport_" not in refused.text
    allowed = client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
    assert allowed.status_code == 200
    assert "pomreport_graphql_requests_total" in allowed.text


def test_serve_with_two_workers_adds_up_every_workers_metrics(tmp_path: Path) -> None:
    metrics_directory = tmp_path / "metrics"
    metrics_directory.mkdir()
    environment = {
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_directory),  # else serve makes one of its own
        # Two workers on SQLite need events that cross processes.
        "REDIS_URL": os.environ.get("POMREPORT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
        "POMREPORT_REDIS_PREFIX": f"pomreport-test:{tmp_path.name}:",
    }
    with serving(tmp_path, "--workers", "2", environment=environment) as server:
        for _ in range(20):  # new connections, so both workers answer some
            with httpx.Client(base_url=server.base_url) as fresh:
                assert fresh.post("/graphql", json={"query": QUERY}).status_code == 200
        # Whichever worker answers a scrape, it shows all 20.
        for _ in range(4):
            with httpx.Client(base_url=server.base_url) as fresh:
                samples = _samples(fresh.get("/metrics").text)
            labels = {"operation_type": "query", "operation_name": "Agents", "outcome": "ok"}
            assert _value(samples, "pomreport_graphql_requests_total", **labels) == 20
    # Each worker kept its values in files of its own there.
    workers = {path.stem.rsplit("_", 1)[-1] for path in metrics_directory.glob("*.db")}
    assert len(workers) >= 2, sorted(metrics_directory.iterdir())


def test_operation_names_are_labels_only_when_short_and_valid(
    empty_graphql: GraphQLClient,
) -> None:
    long_name = "L" * 65
    empty_graphql.data(f"query {long_name} {{ agents(first: 1) {{ totalCount }} }}")
    invalid = empty_graphql.post("query Minted { noSuchField }")
    assert invalid.status_code == 400
    samples = _scrape(empty_graphql)
    names = {
        dict(labels).get("operation_name")
        for name, labels in samples
        if name == "pomreport_graphql_requests_total"
    }
    assert long_name not in names
    assert "Minted" not in names
    refused = {
        "operation_type": "query",
        "operation_name": "",
        "outcome": "GRAPHQL_VALIDATION_FAILED",
    }
    assert _value(samples, "pomreport_graphql_requests_total", **refused) >= 1


def test_a_scrape_forgets_the_live_gauges_of_workers_that_exited(tmp_path: Path) -> None:
    environment = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    gone = "from service import metrics; metrics.WEBSOCKETS.inc(3); metrics.EVENTS_PUBLISHED.inc()"
    subprocess.run([sys.executable, "-c", gone], env=environment, check=True)
    scrape = "from service import metrics; print(metrics.exposition().decode())"
    shown = subprocess.run(
        [sys.executable, "-c", scrape], env=environment, check=True, capture_output=True, text=True
    ).stdout
    samples = _samples(shown)
    assert _value(samples, "pomreport_websockets_open") == 0  # its worker is gone
    assert _value(samples, "pomreport_events_published_total") == 1  # counts stay counted


def test_serve_ends_streamed_subscriptions_when_told_to_stop(tmp_path: Path) -> None:
    environment = {"POMREPORT_SHUTDOWN_TIMEOUT_SECONDS": "1"}
    with (
        serving(tmp_path, environment=environment) as server,
        httpx.Client(base_url=server.base_url, timeout=10) as client,
    ):
        subscription = {"query": "subscription S { callbackStatusChanged { status } }"}
        with client.stream(
            "POST", "/graphql", json=subscription, headers={"accept": "text/event-stream"}
        ) as stream:
            assert stream.status_code == 200
            with httpx.Client(base_url=server.base_url) as scraper:
                samples = _samples(scraper.get("/metrics").text)
            assert _value(samples, "pomreport_subscriptions_active") == 1
            server.process.terminate()
            started = time.monotonic()
            server.process.wait(timeout=20)  # the stream still open
            assert time.monotonic() - started < 10
