"""A key's verdict over time: revocation and the end of open mode reach open WebSockets,
proxied requests never get open mode by accident, and lookups are shared and remembered."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.testclient import WebSocketTestSession

from service.auth.api_keys import ApiKeyRegistry, create_api_key, revoke_api_key
from service.db.engines import create_engine, create_session_maker
from service.db.models.api_key import Role
from service.errors import UnauthenticatedError
from service.settings import Settings, parse_database_url
from tests.auth.test_authorization import SUBSCRIPTION
from tests.events.test_subscription import wait_for_subscribers
from tests.graphql_client import GraphQLClient, on_database, serve_graphql

CACHE_SECONDS = 0.2
AGENTS = "{ agents(first: 1) { totalCount } }"
UPSERT = 'mutation { upsertAgent(input: {agentId: "LATE", name: "Late"}) { agentId } }'


def _settings(url: URL, **changes: Any) -> Settings:
    return Settings(
        database_url=url, expiry_sweep_seconds=0, api_key_cache_seconds=CACHE_SECONDS, **changes
    )


def _start(websocket: WebSocketTestSession, protocol: str, operation_id: str, query: str) -> None:
    kind = "subscribe" if protocol == "graphql-transport-ws" else "start"
    websocket.send_json({"id": operation_id, "type": kind, "payload": {"query": query}})


def _result(websocket: WebSocketTestSession) -> dict[str, Any]:
    """The next result or error message's payload, as errors and data."""
    while True:
        message: dict[str, Any] = websocket.receive_json()
        if message["type"] in ("next", "data"):
            payload: dict[str, Any] = message["payload"]
            return payload
        if message["type"] == "error":
            errors = message["payload"]
            return {"errors": errors if isinstance(errors, list) else [errors]}


def _code(result: dict[str, Any]) -> str | None:
    errors = result.get("errors") or []
    return errors[0]["extensions"]["code"] if errors else None


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
def test_a_key_revoked_while_a_websocket_is_open_stops_working_on_it(
    database_url: URL, protocol: str
) -> None:
    row, key = on_database(database_url, lambda sessions: create_api_key(sessions, Role.ADMIN))
    with (
        contextlib.contextmanager(serve_graphql)(_settings(database_url)) as api,
        api.client.websocket_connect("/graphql", subprotocols=[protocol]) as websocket,
    ):
        websocket.send_json(
            {"type": "connection_init", "payload": {"Authorization": f"Bearer {key}"}}
        )
        assert websocket.receive_json()["type"] == "connection_ack"
        if protocol == "graphql-transport-ws":  # legacy graphql-ws carries subscriptions only
            _start(websocket, protocol, "q1", AGENTS)
            assert _code(_result(websocket)) is None
        _start(websocket, protocol, "s1", SUBSCRIPTION)
        wait_for_subscribers(api, 1)

        on_database(database_url, lambda sessions: revoke_api_key(sessions, row.id))
        time.sleep(CACHE_SECONDS * 1.5)
        # The running subscription ends with UNAUTHENTICATED at the next change ...
        operator = on_database(
            database_url, lambda sessions: create_api_key(sessions, Role.OPERATOR)
        )[1]
        api.headers = {"Authorization": f"Bearer {operator}"}
        _schedule_one_callback(api)
        assert _code(_result(websocket)) == "UNAUTHENTICATED"
        # ... and new operations on the socket are refused, mutations included.
        if protocol == "graphql-transport-ws":
            _start(websocket, protocol, "q2", UPSERT.replace("LATE", "LATER"))
            assert _code(_result(websocket)) == "UNAUTHENTICATED"
            assert api.data('{ agent(agentId: "LATER") { agentId } }') == {"agent": None}
        else:
            _start(websocket, protocol, "s2", SUBSCRIPTION)
            assert _code(_result(websocket)) == "UNAUTHENTICATED"


def _schedule_one_callback(api: GraphQLClient) -> None:
    """Make one callback status change, with the client's (operator) key."""
    api.data(
        """mutation {
          upsertCampaign(input: {name: "Late", campaignType: FINITE, strategy: "S",
                                 maxAttempts: 1}) { name }
          upsertContact(input: {contactId: "CT-LATE", firstName: "A", lastName: "B",
                                phone: "+1 555 0100", timeZone: "UTC"}) { contactId }
          upsertAgent(input: {agentId: "LATE", name: "Late"}) { agentId }
        }"""
    )
    api.data('mutation { startJob(input: {jobId: 77, campaignName: "Late"}) { jobId } }')
    api.data(
        """mutation { scheduleCallback(input: {callbackId: "CB-LATE", callbackType: CAMPAIGN,
          jobId: 77, creatorAgentId: "LATE", contactId: "CT-LATE", callId: "CALL-LATE",
          scheduledStartTime: "2030-01-01T09:00:00Z", scheduledEndTime: "2030-01-01T17:00:00Z"})
          { callbackId } }"""
    )


def test_a_websocket_opened_in_open_mode_is_refused_once_a_key_exists(database_url: URL) -> None:
    settings = _settings(database_url, open_without_keys=True)
    with (
        contextlib.contextmanager(serve_graphql)(settings) as api,
        api.client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws,
    ):
        ws.send_json({"type": "connection_init"})
        assert ws.receive_json()["type"] == "connection_ack"
        _start(ws, "graphql-transport-ws", "q1", AGENTS)
        assert _code(_result(ws)) is None

        on_database(database_url, lambda sessions: create_api_key(sessions, Role.VIEWER))
        time.sleep(CACHE_SECONDS * 1.5)
        assert api.post(AGENTS).status_code == 401
        _start(ws, "graphql-transport-ws", "q2", UPSERT)
        assert _code(_result(ws)) == "UNAUTHENTICATED"


@pytest.mark.parametrize(
    "header", ["X-Forwarded-For", "Forwarded", "X-Real-IP"], ids=lambda name: name.lower()
)
def test_open_mode_on_loopback_refuses_requests_a_proxy_forwarded(
    database_url: URL, header: str
) -> None:
    proxied = {header: "203.0.113.7"}
    with contextlib.contextmanager(serve_graphql)(
        _settings(database_url, open_without_keys=True)
    ) as api:
        assert api.post(AGENTS).status_code == 200
        api.headers = proxied
        refused = api.post(AGENTS)
        assert refused.status_code == 401
        assert "through a proxy" in refused.json()["errors"][0]["message"]
    # The operator's override is for exactly that: a proxy in front that authenticates.
    with contextlib.contextmanager(serve_graphql)(
        _settings(database_url, allow_unauthenticated=True)
    ) as api:
        api.headers = proxied
        assert api.post(AGENTS).status_code == 200


async def test_concurrent_checks_of_one_key_share_one_lookup_and_bad_keys_are_remembered(
    engine: AsyncEngine,
) -> None:
    session_maker = create_session_maker(engine)
    _row, key = await create_api_key(session_maker, Role.VIEWER)
    lookups: list[str] = []

    def count(_connection: Any, _cursor: Any, statement: str, *_arguments: Any) -> None:
        if "FROM api_key" in statement:
            lookups.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    registry = ApiKeyRegistry(session_maker, open_without_keys=False, cache_seconds=60)
    principals = await asyncio.gather(*(registry.authenticate(f"Bearer {key}") for _ in range(50)))
    assert {principal.role for principal in principals} == {Role.VIEWER}
    assert len(lookups) == 1

    for _ in range(20):
        with pytest.raises(UnauthenticatedError):
            await registry.authenticate("Bearer pomr_never-issued")
    assert len(lookups) == 2


def test_a_query_over_legacy_graphql_ws_is_a_client_error(database_url: URL) -> None:
    settings = _settings(database_url, open_without_keys=True)
    with (
        contextlib.contextmanager(serve_graphql)(settings) as api,
        api.client.websocket_connect("/graphql", subprotocols=["graphql-ws"]) as websocket,
    ):
        websocket.send_json({"type": "connection_init"})
        assert websocket.receive_json()["type"] == "connection_ack"
        _start(websocket, "graphql-ws", "1", AGENTS)
        result = _result(websocket)
        assert _code(result) == "BAD_REQUEST"
        assert result["errors"][0]["message"] == "queries are not allowed"


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
def test_a_websocket_that_never_sends_its_key_is_closed(database_url: URL, protocol: str) -> None:
    settings = _settings(database_url, websocket_init_timeout_seconds=0.3)
    with (
        contextlib.contextmanager(serve_graphql)(settings) as api,
        api.client.websocket_connect("/graphql", subprotocols=[protocol]) as websocket,
    ):
        started = time.monotonic()
        closed = websocket.receive()
        assert closed["type"] == "websocket.close"
        assert closed["code"] == 4408
        assert 0.2 < time.monotonic() - started < 5


async def test_a_shared_lookup_that_fails_after_its_waiters_left_is_not_lost(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import gc

    engine = create_engine(parse_database_url("postgresql://postgres@127.0.0.1:1/test"))
    registry = ApiKeyRegistry(
        create_session_maker(engine), open_without_keys=True, cache_seconds=10
    )
    try:
        for authorization in ("Bearer pomr_gone", None):
            waiter = asyncio.ensure_future(registry.authenticate(authorization))
            await asyncio.sleep(0)
            waiter.cancel()
        await asyncio.sleep(0.5)  # the lookups fail: nothing listens
        gc.collect()
        with pytest.raises(ConnectionRefusedError):  # a new waiter gets the failure
            await registry.authenticate("Bearer pomr_gone")
    finally:
        await engine.dispose()
    assert not [record for record in caplog.records if "never retrieved" in record.message]
