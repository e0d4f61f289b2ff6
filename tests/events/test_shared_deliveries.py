"""Shared subscription deliveries (`service.graph.fanout`) send what the general path sends.

Subscribers over graphql-transport-ws are handed over to delivery groups; subscribers over
legacy graphql-ws still execute every event for themselves through Strawberry's stream. Both
listen to the same changes here, so every payload of the shared path is compared with the
general path's for the same change, document, variables and key.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from typing import Any

import pytest
from sqlalchemy.engine import URL
from starlette.testclient import WebSocketTestSession
from strawberry.types import ExecutionResult

from service.auth.api_keys import create_api_key
from service.db.models.api_key import Role
from service.errors import SubscriberTooSlowError, mask_unexpected_errors
from service.events.hub import ChangeFilter, DeliveredChange, EventHub
from service.graph.fanout import GroupMember, SubscriptionSocket, encode_payload, join_group
from service.settings import Settings
from tests.callbacks.test_rules import T0, _iso, _schedule, _setup
from tests.events.test_hub import _change
from tests.events.test_subscription import wait_for_subscribers
from tests.graphql_client import GraphQLClient, on_database, serve_graphql

CALLBACK_FIELDS = """
  callbackId callbackStatus callbackType campaignName creationTime scheduledEndTime
  contact { contactId timeZone firstName }
  campaign { name campaignType }
  job { jobId }
  creatorAgent { agentId name }
  attempts { attemptTime }
"""
# (document, variables): aliases, fragments, __typename, directives, nested objects, filters.
SUBSCRIPTIONS: list[tuple[str, dict[str, Any]]] = [
    (f"subscription {{ callbackStatusChanged {{ status callback {{ {CALLBACK_FIELDS} }} }} }}", {}),
    (
        """subscription Changes($filter: CallbackStatusChangedFilter, $withContact: Boolean!) {
          changed: callbackStatusChanged(filter: $filter) {
            __typename before: previousStatus after: status changedAt
            callback { id callbackId contact @include(if: $withContact) { contactId } }
          }
        }""",
        {"filter": {"contactId": "C1"}, "withContact": True},
    ),
    (
        """subscription($skip: Boolean!) {
          callbackStatusChanged(filter: {statuses: [ACTIVE]}) { ...change }
        }
        fragment change on CallbackStatusChange {
          status
          callback { ... on Callback { callbackId servicedByAgent @skip(if: $skip) { agentId } } }
        }""",
        {"skip": False},
    ),
    (
        """subscription {
          callbackStatusChanged(filter: {campaignNames: ["Win Back"]}) {
            status callback { callbackId }
          }
        }""",
        {},
    ),
]
SUBSCRIBE = {"graphql-transport-ws": "subscribe", "graphql-ws": "start"}
RESULT = {"graphql-transport-ws": "next", "graphql-ws": "data"}


def _connect(websocket: WebSocketTestSession, key: str | None) -> None:
    payload = {"Authorization": f"Bearer {key}"} if key else {}
    websocket.send_json({"type": "connection_init", "payload": payload})
    assert websocket.receive_json()["type"] == "connection_ack"


def _payloads(websocket: WebSocketTestSession, protocol: str, count: int) -> list[Any]:
    """The next `count` result payloads, in order."""
    payloads: list[Any] = []
    while len(payloads) < count:
        message = websocket.receive_json()
        if message["type"] != "ka":
            assert message["type"] == RESULT[protocol], message
            payloads.append(message["payload"])
    return payloads


def _changes(api: GraphQLClient) -> None:
    """Five status changes over two contacts, campaigns and jobs: CB1, CB2 and CB3 scheduled
    (CB3 on CB1's call overwrites it), and CB2 completed by its agent."""
    _schedule(api, "CB1")
    _schedule(api, "CB2", contactId="C2", jobId=8, callId="CALL-2", creatorAgentId="A2")
    _schedule(api, "CB3", creationTime=_iso(T0 + dt.timedelta(minutes=5)))
    api.data(
        """mutation { recordCallbackAttempt(input: {callbackId: "CB2", agentId: "A2",
             customCompletionCode: "Sale", completed: true}) { callbackId } }"""
    )


def test_shared_deliveries_equal_the_general_path_for_every_document_and_key(
    database_url: URL,
) -> None:
    settings = Settings(database_url=database_url, expiry_sweep_seconds=0)
    keys = on_database(database_url, _issue_keys)
    with contextlib.ExitStack() as stack:
        api = stack.enter_context(contextlib.contextmanager(serve_graphql)(settings))
        api.headers = {"Authorization": f"Bearer {keys['operator']}"}
        _setup(api)
        sockets: list[tuple[str, str, int, WebSocketTestSession]] = []
        for key_name in ("viewer", "agent"):
            for protocol in SUBSCRIBE:
                for index, (document, variables) in enumerate(SUBSCRIPTIONS):
                    websocket = stack.enter_context(
                        api.client.websocket_connect("/graphql", subprotocols=[protocol])
                    )
                    _connect(websocket, keys[key_name])
                    websocket.send_json(
                        {
                            "id": f"s{index}",
                            "type": SUBSCRIBE[protocol],
                            "payload": {"query": document, "variables": variables},
                        }
                    )
                    sockets.append((key_name, protocol, index, websocket))
        wait_for_subscribers(api, len(sockets))
        _changes(api)
        received = {
            (key_name, protocol, index): _payloads(websocket, protocol, EXPECTED[key_name][index])
            for key_name, protocol, index, websocket in sockets
        }
    for key_name in ("viewer", "agent"):
        for index in range(len(SUBSCRIPTIONS)):
            shared = received[(key_name, "graphql-transport-ws", index)]
            general = received[(key_name, "graphql-ws", index)]
            assert shared == general, (key_name, index)
            assert all("errors" not in payload for payload in shared)
    # The agent (A2) sees only its own callback's changes; the viewer sees all.
    ids = [
        p["data"]["callbackStatusChanged"]["callback"]["callbackId"]
        for p in received[("agent", "graphql-transport-ws", 0)]
    ]
    assert ids == ["CB2", "CB2"]


# Payloads each document receives, for the viewer and for the agent A2 (who scheduled CB2 and
# sees its two changes only): document 0 every change (CB1, CB2, CB3 scheduled, CB1
# overwritten, CB2 completed), 1 contact C1's three, 2 ACTIVE ones, 3 the Win Back campaign's.
EXPECTED = {"viewer": [5, 3, 3, 2], "agent": [2, 0, 1, 2]}


async def _issue_keys(sessions: Any) -> dict[str, str]:
    keys = {}
    for role, agent in ((Role.VIEWER, None), (Role.AGENT, "A2"), (Role.OPERATOR, None)):
        _row, keys[role.value] = await create_api_key(sessions, role, agent_id=agent)
    return keys


# --- one member, with a socket of the test's making --------------------------------------------


class _Socket:
    """A socket whose writes wait until the test lets them through."""

    def __init__(self) -> None:
        self.written: list[str] = []
        self.drained = asyncio.Event()
        self._wrote = asyncio.Event()

    async def send_text(self, text: str) -> None:
        await self.drained.wait()
        self.written.append(text)
        self._wrote.set()

    async def wait_for_writes(self, count: int) -> None:
        while len(self.written) < count:
            self._wrote.clear()
            await asyncio.wait_for(self._wrote.wait(), 5)


async def _never_executed(_event: object) -> Any:
    raise AssertionError("shared payloads need no execution")


def _member(socket: _Socket, key_holds: Any, backlog: int = 3) -> GroupMember:
    subscription = SubscriptionSocket(
        "1", "subscription { x }", None, None, '{"p":', socket.send_text
    )
    return GroupMember(subscription, _never_executed, key_holds, backlog)


async def _key_holds() -> str | None:
    return None  # the key holds


async def test_a_member_writes_in_order_and_is_closed_when_its_socket_stops_draining() -> None:
    socket = _Socket()
    member = _member(socket, _key_holds)
    delivering = asyncio.ensure_future(member.deliver())
    member.push('"0"')
    member.push('"1"')
    socket.drained.set()
    await socket.wait_for_writes(2)
    assert socket.written == ['{"p":"0"}', '{"p":"1"}']
    socket.drained.clear()
    for number in range(2, 7):  # one waits in the socket, three queue, the fifth is too many
        member.push(f'"{number}"')
        await asyncio.sleep(0)
    member.push('"7"')  # ended: nothing more is queued
    socket.drained.set()  # the write under way completes; then the subscription ends
    error = await asyncio.wait_for(delivering, 5)
    assert isinstance(error, SubscriberTooSlowError)
    assert error.formatted["extensions"] == {"code": "SUBSCRIBER_TOO_SLOW"}
    assert socket.written == ['{"p":"0"}', '{"p":"1"}', '{"p":"2"}']


async def test_a_member_whose_key_fails_its_check_ends_unauthenticated_and_writes_nothing() -> None:
    socket = _Socket()
    socket.drained.set()

    async def revoked() -> bool:
        return False

    member = _member(socket, revoked)
    member.push('"0"')
    error = await asyncio.wait_for(member.deliver(), 5)
    assert error.formatted["extensions"] == {"code": "UNAUTHENTICATED"}
    assert member.revoked
    assert socket.written == []


async def test_a_member_whose_socket_fails_stops_writing_until_it_is_cancelled() -> None:
    async def broken(_text: str) -> None:
        raise ConnectionResetError("gone")

    subscription = SubscriptionSocket("1", "subscription { x }", None, None, "{", broken)
    member = GroupMember(subscription, _never_executed, _key_holds, 3)
    delivering = asyncio.ensure_future(member.deliver())
    member.push('"0"')
    member.push('"1"')
    await asyncio.sleep(0.01)
    assert not delivering.done()  # it waits for its handler to end the operation
    delivering.cancel()
    with pytest.raises(asyncio.CancelledError):
        await delivering


def test_encoded_payloads_carry_errors_only_when_there_are_some() -> None:
    assert encode_payload(ExecutionResult(data={"a": 1}, errors=None)) == '{"data":{"a":1}}'


async def test_a_key_check_that_fails_unexpectedly_ends_the_subscription_with_that_error() -> None:
    socket = _Socket()
    socket.drained.set()

    async def unreachable() -> bool:
        raise ConnectionRefusedError("the database is down")

    member = _member(socket, unreachable)
    member.push('"0"')
    error = await asyncio.wait_for(member.deliver(), 5)
    assert isinstance(error.original_error, ConnectionRefusedError)
    mask_unexpected_errors([error])  # as the handler does before sending it
    assert error.formatted["extensions"] == {"code": "SERVICE_UNAVAILABLE"}
    assert socket.written == []


# --- a group, with executions of the test's making ---------------------------------------------


async def _callback_id(change: object) -> ExecutionResult:
    assert isinstance(change, DeliveredChange)
    return ExecutionResult(data={"id": change.callback.callback_id}, errors=None)


def _group_member(socket: _Socket, execute: Any, backlog: int = 3) -> GroupMember:
    subscription = SubscriptionSocket("1", "subscription { x }", None, None, "", socket.send_text)
    return GroupMember(subscription, execute, _key_holds, backlog)


def _offer(hub: EventHub, number: int) -> None:
    for sink in list(hub._sinks):
        sink.offer(_change(number))


async def test_a_member_gets_only_the_changes_offered_after_it_joined() -> None:
    hub = EventHub(None, backlog=3)  # type: ignore[arg-type]  # loads nothing here
    executing = asyncio.Event()

    async def held(change: object) -> ExecutionResult:
        await executing.wait()
        return await _callback_id(change)

    first, second = _Socket(), _Socket()
    first.drained.set()
    second.drained.set()
    early = _group_member(first, held)
    join_group(hub, "key", ChangeFilter(), lambda change: change, early)
    delivering = [asyncio.ensure_future(early.deliver())]
    _offer(hub, 1)  # being executed when the second subscriber joins
    await asyncio.sleep(0)
    late = _group_member(second, held)
    join_group(hub, "key", ChangeFilter(), lambda change: change, late)
    delivering.append(asyncio.ensure_future(late.deliver()))
    assert hub.subscriber_count == 2
    _offer(hub, 2)
    executing.set()
    await first.wait_for_writes(2)
    await second.wait_for_writes(1)
    assert first.written == ['{"data":{"id":"CB1"}}}', '{"data":{"id":"CB2"}}}']
    assert second.written == ['{"data":{"id":"CB2"}}}']
    for task in delivering:
        task.cancel()
    await asyncio.gather(*delivering, return_exceptions=True)
    late.leave()
    early.leave()
    assert hub.subscriber_count == 0
    assert not hub._shared_sinks


async def test_a_group_whose_executions_fall_behind_closes_its_members_as_too_slow() -> None:
    hub = EventHub(None, backlog=3)  # type: ignore[arg-type]
    executing = asyncio.Event()

    async def stuck(change: object) -> ExecutionResult:
        await executing.wait()
        return await _callback_id(change)

    socket = _Socket()
    socket.drained.set()
    member = _group_member(socket, stuck)
    join_group(hub, "key", ChangeFilter(), lambda change: change, member)
    delivering = asyncio.ensure_future(member.deliver())
    for number in range(6):  # one executing, three waiting, then one too many
        _offer(hub, number)
        await asyncio.sleep(0)
    error = await asyncio.wait_for(delivering, 5)
    assert isinstance(error, SubscriberTooSlowError)
    executing.set()
    await asyncio.sleep(0.01)
    assert socket.written == []
    member.leave()
    assert not hub._shared_sinks
