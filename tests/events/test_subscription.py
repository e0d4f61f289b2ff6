"""The subscription over both WebSocket protocols, in-process (ASGI), on both stores."""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from typing import Any

import pytest
from starlette.testclient import WebSocketTestSession

from tests.callbacks.test_rules import T0, _iso, _schedule, _setup
from tests.graphql_client import GraphQLClient

SUBSCRIPTION = """
subscription($filter: CallbackStatusChangedFilter) {
  callbackStatusChanged(filter: $filter) {
    previousStatus status changedAt
    callback { callbackId callbackStatus campaignName contact { contactId } }
  }
}
"""


def wait_for_subscribers(api: GraphQLClient, count: int) -> None:
    """Block until the hub has `count` subscribers, so no change is sent before they listen."""
    hub = api.client.app.state.events.hub  # type: ignore[attr-defined]
    deadline = time.monotonic() + 10
    while hub.subscriber_count != count:
        assert time.monotonic() < deadline, f"{hub.subscriber_count} subscribers, not {count}"
        time.sleep(0.01)


def _next_payload(websocket: WebSocketTestSession) -> dict[str, Any]:
    message: dict[str, Any] = websocket.receive_json()
    assert message["type"] in ("next", "data"), message
    payload: dict[str, Any] = message["payload"]["data"]["callbackStatusChanged"]
    return payload


def test_subscription_transport_ws_receives_filtered_changes_after_commit(
    empty_graphql: GraphQLClient,
) -> None:
    _setup(empty_graphql)
    with empty_graphql.client.websocket_connect(
        "/graphql", subprotocols=["graphql-transport-ws"]
    ) as websocket:
        websocket.send_json({"type": "connection_init"})
        assert websocket.receive_json()["type"] == "connection_ack"
        websocket.send_json(
            {
                "id": "1",
                "type": "subscribe",
                "payload": {
                    "query": SUBSCRIPTION,
                    "variables": {
                        "filter": {"contactId": "C1", "statuses": ["ACTIVE", "OVERWRITTEN"]}
                    },
                },
            }
        )
        wait_for_subscribers(empty_graphql, 1)
        # Filtered out on the server: another contact.
        _schedule(empty_graphql, "CB-C2", contactId="C2")
        _schedule(empty_graphql, "CB1")
        first = _next_payload(websocket)
        assert (first["previousStatus"], first["status"]) == (None, "ACTIVE")
        assert first["callback"]["callbackId"] == "CB1"
        assert first["callback"]["campaignName"] == "Spring Renewals"
        _schedule(empty_graphql, "CB2", creationTime=_iso(T0 + dt.timedelta(minutes=2)))
        received = {
            (p["callback"]["callbackId"], p["previousStatus"], p["status"])
            for p in (_next_payload(websocket), _next_payload(websocket))
        }
        assert received == {("CB1", "ACTIVE", "OVERWRITTEN"), ("CB2", None, "ACTIVE")}
        websocket.send_json({"id": "1", "type": "complete"})


def test_subscription_legacy_graphql_ws_protocol(empty_graphql: GraphQLClient) -> None:
    _setup(empty_graphql)
    with empty_graphql.client.websocket_connect(
        "/graphql", subprotocols=["graphql-ws"]
    ) as websocket:
        websocket.send_json({"type": "connection_init"})
        assert websocket.receive_json()["type"] == "connection_ack"
        websocket.send_json(
            {"id": "7", "type": "start", "payload": {"query": SUBSCRIPTION, "variables": {}}}
        )
        wait_for_subscribers(empty_graphql, 1)
        _schedule(empty_graphql, "CB1")
        payload = _next_payload(websocket)
        assert (payload["callback"]["callbackId"], payload["status"]) == ("CB1", "ACTIVE")
        websocket.send_json({"id": "7", "type": "stop"})


def _subscribe(
    websocket: WebSocketTestSession,
    variables: dict[str, Any],
    protocol: str = "graphql-transport-ws",
) -> None:
    websocket.send_json({"type": "connection_init"})
    assert websocket.receive_json()["type"] == "connection_ack"
    websocket.send_json(
        {
            "id": "1",
            "type": "subscribe" if protocol == "graphql-transport-ws" else "start",
            "payload": {"query": SUBSCRIPTION, "variables": variables},
        }
    )


# graphql-transport-ws shares through delivery groups; legacy graphql-ws through the shared
# per-change results of Strawberry's streams (SubscriptionEventExecutionContext).
@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
def test_subscribers_with_one_document_and_variables_share_one_execution_per_change(
    empty_graphql: GraphQLClient, protocol: str
) -> None:
    _setup(empty_graphql)
    _schedule(empty_graphql, "CB0")
    # What the mutation itself reads of contacts, with nobody subscribed.
    alone = sum("FROM contact" in statement for statement in empty_graphql.statements)
    # An undeclared variable changes nothing: one kind, however large its value.
    huge = {"undeclared": 2**70}
    c1: dict[str, Any] = {"filter": {"contactId": "C1"}}
    kinds: list[dict[str, Any]] = [{}, {}, {}, huge, c1, c1]
    with contextlib.ExitStack() as stack:
        websockets = [
            stack.enter_context(
                empty_graphql.client.websocket_connect("/graphql", subprotocols=[protocol])
            )
            for _ in kinds
        ]
        for websocket, variables in zip(websockets, kinds, strict=True):
            _subscribe(websocket, variables, protocol)
        wait_for_subscribers(empty_graphql, len(kinds))
        _schedule(empty_graphql, "CB1", callId="CALL-2")
        payloads = [_next_payload(websocket) for websocket in websockets]
        assert all(payload == payloads[0] for payload in payloads)
        assert payloads[0]["callback"]["contact"] == {"contactId": "C1"}
        # Two kinds of subscriber (no filter; the C1 filter): two executions, each loading
        # the contact once, for six subscribers.
        loads = sum("FROM contact" in statement for statement in empty_graphql.statements)
        assert loads - alone == 2, empty_graphql.statements


def test_a_subscription_sent_as_a_plain_request_is_a_bad_request_naming_the_ways_that_work(
    empty_graphql: GraphQLClient,
) -> None:
    query = "subscription { callbackStatusChanged { status } }"
    posted = empty_graphql.post(query)
    fetched = empty_graphql.client.get(
        "/graphql", params={"query": query}, headers={"accept": "application/json"}
    )
    for response, status in ((posted, 400), (fetched, 405)):
        assert response.status_code == status
        error = response.json()["errors"][0]
        assert error["extensions"]["code"] == "BAD_REQUEST"
        for way in ("WebSocket", "text/event-stream", "multipart/mixed;subscriptionSpec=1.0"):
            assert way in error["message"]
    assert empty_graphql.statements == []
