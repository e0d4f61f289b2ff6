from __future__ import annotations

import asyncio
import sqlite3
import time
from typing import Any

import pytest
from sqlalchemy.engine import URL
from starlette.testclient import TestClient

from service.app import create_app
from service.db.engines import create_engine
from service.errors import BadUserInputError, is_service_unavailable
from service.settings import Settings, parse_database_url
from tests.conftest import SqliteDatabases
from tests.graphql_client import GraphQLClient


@pytest.mark.parametrize(
    ("query", "variables", "code"),
    [
        pytest.param("{ callbacks { ", None, "GRAPHQL_PARSE_FAILED", id="parse"),
        pytest.param("{ callbacks { nope } }", None, "GRAPHQL_VALIDATION_FAILED", id="field"),
        pytest.param(
            "{ callbacks(filter: {callbackStatus: {eq: PENDING}}) { totalCount } }",
            None,
            "GRAPHQL_VALIDATION_FAILED",
            id="enum-literal",
        ),
        pytest.param(
            "query($n: Int) { callbacks(first: $n) { totalCount } }",
            {"n": "ten"},
            "BAD_USER_INPUT",
            id="variable-type",
        ),
        pytest.param(
            "query($f: CallbackFilter) { callbacks(filter: $f) { totalCount } }",
            {"f": {"creationTime": {"gte": "yesterday"}}},
            "BAD_USER_INPUT",
            id="variable-datetime",
        ),
    ],
)
def test_graphql_errors_carry_a_code(
    graphql: GraphQLClient, query: str, variables: dict[str, Any] | None, code: str
) -> None:
    body = graphql.execute(query, variables)
    assert body["errors"][0]["extensions"]["code"] == code
    assert graphql.statements == []


def test_unreachable_database_is_service_unavailable() -> None:
    unreachable = parse_database_url("postgresql://postgres@127.0.0.1:1/test")
    settings = Settings(open_without_keys=True, database_url=unreachable, expiry_sweep_seconds=0)
    with TestClient(create_app(settings)) as client:
        started = time.monotonic()
        body = client.post("/graphql", json={"query": "{ callbacks { totalCount } }"}).json()
        assert time.monotonic() - started < 2
    error = body["errors"][0]
    assert error["extensions"] == {"code": "SERVICE_UNAVAILABLE"}
    assert "127.0.0.1" not in error["message"]


def test_unexpected_failure_is_masked_with_a_request_id_and_logged(
    database_url: URL, caplog: pytest.LogCaptureFixture
) -> None:
    # A table gone missing under the service: nothing a client did, nothing it should see.
    async def drop_attempts() -> None:
        engine = create_engine(database_url)
        async with engine.begin() as connection:
            await connection.exec_driver_sql("DROP TABLE callback_attempt")
        await engine.dispose()

    asyncio.run(drop_attempts())
    settings = Settings(open_without_keys=True, database_url=database_url, expiry_sweep_seconds=0)
    with TestClient(create_app(settings)) as client:
        # CallbackAttempt:1, whose table is gone.
        query = '{ node(id: "Q2FsbGJhY2tBdHRlbXB0OjE=") { id } }'
        response = client.post(
            "/graphql", json={"query": query}, headers={"X-Request-ID": "support-ticket-42"}
        )
        failed = response.json()
    error = failed["errors"][0]
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    request_id = error["extensions"]["requestId"]
    # The client's own ID names the failure, in the body, the header and the log.
    assert request_id == response.headers["x-request-id"] == "support-ticket-42"
    assert error["message"] == f"internal server error (request id {request_id})"
    assert "callback_attempt" not in str(failed)
    assert any(request_id in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize(
    ("query", "variables", "code"),
    [
        ("{ agents(first: 1) {", None, "GRAPHQL_PARSE_FAILED"),
        ("{ noSuchField }", None, "GRAPHQL_VALIDATION_FAILED"),
        ("query($n: Int) { agents(first: $n) { totalCount } }", {"n": "x"}, "BAD_USER_INPUT"),
        ("{ callbacks(first: 501) { totalCount } }", None, "BAD_USER_INPUT"),
    ],
)
def test_a_request_that_ran_nothing_has_no_data_entry(
    empty_graphql: GraphQLClient, query: str, variables: dict[str, Any] | None, code: str
) -> None:
    response = empty_graphql.post(query, variables)
    body = response.json()
    assert response.status_code == 400
    assert "data" not in body
    assert body["errors"][0]["extensions"]["code"] == code


def test_an_error_raised_while_executing_keeps_the_data_entry(
    empty_graphql: GraphQLClient,
) -> None:
    body = empty_graphql.post('{ callbacks(first: 1, after: "%%%") { totalCount } }').json()
    assert body["errors"][0]["path"] == ["callbacks"]
    assert "data" in body


def test_a_write_that_cannot_get_the_sqlite_write_lock_is_service_unavailable(
    sqlite_databases: SqliteDatabases,
) -> None:
    url = sqlite_databases.create(migrated=True)
    settings = Settings(
        open_without_keys=True,
        database_url=url,
        expiry_sweep_seconds=0,
        sqlite_busy_timeout_ms=200,
    )
    holder = sqlite3.connect(str(url.database), isolation_level=None)
    try:
        with TestClient(create_app(settings)) as client:
            holder.execute("BEGIN IMMEDIATE")  # another process writing, for longer than 200 ms
            mutation = 'mutation { upsertAgent(input: {agentId: "A1", name: "Ava"}) { agentId } }'
            refused = client.post("/graphql", json={"query": mutation})
            holder.execute("ROLLBACK")
            answered = client.post("/graphql", json={"query": mutation})
    finally:
        holder.close()
        sqlite_databases.drop(url)
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    error = refused.json()["errors"][0]
    assert error["extensions"] == {"code": "SERVICE_UNAVAILABLE"}
    # Busy either way: SQLite's lock, or the process's write connection (the change log relay
    # may hold it, waiting for that lock too).
    assert error["message"] in (
        "the database is busy with other writes; try again shortly",
        "the service is busy; try again shortly",
    )
    assert answered.json() == {"data": {"upsertAgent": {"agentId": "A1"}}}


def _raised(raise_it: Any) -> BaseException:
    try:
        raise_it()
    except Exception as error:
        return error
    raise AssertionError("nothing was raised")


def test_a_client_error_is_never_taken_for_an_unavailable_database() -> None:
    """A time zone is looked up as a file: the OSError of a missing one stays in the chain of
    the client's error, which must keep its code (found by the differential test)."""

    def client_error_from_an_os_error() -> None:
        try:
            open("/no/such/zone")  # noqa: SIM115 (it fails)
        except OSError as error:
            raise BadUserInputError("not a time zone") from error

    def from_none_over_an_os_error() -> None:
        try:
            raise FileNotFoundError("/usr/share/zoneinfo/0")
        except OSError:
            raise ValueError("not a time zone") from None

    def unreachable() -> None:
        try:
            raise ConnectionRefusedError("no database")
        except OSError as error:
            raise RuntimeError("the query failed") from error

    assert not is_service_unavailable(_raised(client_error_from_an_os_error))
    assert not is_service_unavailable(_raised(from_none_over_an_os_error))
    assert is_service_unavailable(_raised(unreachable))


def test_a_bad_time_zone_is_bad_user_input_on_both_paths_whatever_ran_before(
    both_paths_graphql: GraphQLClient,
) -> None:
    query = '{ callbacksScheduledDetails(timePeriod: {timeZone: "0"}) { totalRecords } }'
    for _ in range(2):  # the second time zoneinfo answers from its cache
        body = both_paths_graphql.execute(query)
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body
