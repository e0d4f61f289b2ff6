"""The change log: every status change written in its transaction, in commit order;
subscriptions that resume after the last change they received; the relay; pruning."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.testclient import WebSocketTestSession

from service.clock import utc_now
from service.db.models.callback import CallbackStatus
from service.db.models.status_change import StatusChangeEntry
from service.events import change_log
from service.events.change_log import ChangeOrigin
from service.events.changes import StatusChange
from service.events.hub import ChangeFilter, EventHub
from service.events.relay import PUBLISH_GRACE, ChangeLogRelay
from service.events.transports import InProcessTransport, RedisTransport
from service.settings import Settings
from tests.callbacks.test_rules import ATTEMPT, T0, _iso, _schedule, _setup
from tests.events.test_concurrency import SCHEDULE, _prepare, _running_app, _schedule_input
from tests.events.test_subscription import wait_for_subscribers
from tests.graphql_client import GraphQLClient, on_database, post, serve_graphql

RESUMABLE = """
subscription($filter: CallbackStatusChangedFilter, $after: ID) {
  callbackStatusChanged(filter: $filter, after: $after) {
    changeId previousStatus status callback { callbackId }
  }
}
"""


def _log(url: URL) -> list[StatusChangeEntry]:
    async def read(session_maker: async_sessionmaker[AsyncSession]) -> list[StatusChangeEntry]:
        async with session_maker() as session:
            return list(await session.scalars(select(StatusChangeEntry).order_by("id")))

    return on_database(url, read)


def _subscribe(websocket: WebSocketTestSession, variables: dict[str, Any]) -> None:
    websocket.send_json({"type": "connection_init"})
    assert websocket.receive_json()["type"] == "connection_ack"
    websocket.send_json(
        {"id": "1", "type": "subscribe", "payload": {"query": RESUMABLE, "variables": variables}}
    )


def _received(websocket: WebSocketTestSession) -> tuple[str, str, str | None, str]:
    message = websocket.receive_json()
    assert message["type"] == "next", message
    change = message["payload"]["data"]["callbackStatusChanged"]
    return (
        change["changeId"],
        change["callback"]["callbackId"],
        change["previousStatus"],
        change["status"],
    )


def _error_code(websocket: WebSocketTestSession) -> str:
    message = websocket.receive_json()
    if message["type"] == "next":  # an error raised before the first event
        errors = message["payload"]["errors"]
    else:
        assert message["type"] == "error", message
        errors = message["payload"]
    code: str = errors[0]["extensions"]["code"]
    return code


def test_every_status_change_is_logged_in_commit_order_with_its_mutation(
    empty_graphql: GraphQLClient, database_url: URL
) -> None:
    _setup(empty_graphql)
    _schedule(empty_graphql, "CB1")
    _schedule(empty_graphql, "CB2", creationTime=_iso(T0 + dt.timedelta(minutes=1)))
    entries = _log(database_url)
    assert [(e.callback_id, e.previous_status, e.status, e.made_by) for e in entries] == [
        ("CB1", None, CallbackStatus.ACTIVE, "scheduleCallback"),
        # One transaction: the overwrite and the new callback.
        ("CB1", CallbackStatus.ACTIVE, CallbackStatus.OVERWRITTEN, "scheduleCallback"),
        ("CB2", None, CallbackStatus.ACTIVE, "scheduleCallback"),
    ]
    assert [e.id for e in entries] == sorted(e.id for e in entries)
    # Published at commit (in-process or NOTIFY): nothing left for the relay.
    assert all(e.published_at is not None for e in entries)


def test_a_resumed_subscription_gets_what_it_missed_in_order_then_live_changes_once(
    empty_graphql: GraphQLClient,
) -> None:
    _setup(empty_graphql)
    only_c1 = {"filter": {"contactId": "C1"}}
    with empty_graphql.client.websocket_connect(
        "/graphql", subprotocols=["graphql-transport-ws"]
    ) as websocket:
        _subscribe(websocket, only_c1)
        wait_for_subscribers(empty_graphql, 1)
        _schedule(empty_graphql, "CB1")
        first = _received(websocket)
        assert first[1:] == ("CB1", None, "ACTIVE")
    wait_for_subscribers(empty_graphql, 0)
    # Missed while away: an overwrite and a new callback for C1, one for C2 (filtered out).
    _schedule(empty_graphql, "CB2", creationTime=_iso(T0 + dt.timedelta(minutes=1)))
    _schedule(empty_graphql, "CB-C2", contactId="C2", callId="CALL-9")
    with empty_graphql.client.websocket_connect(
        "/graphql", subprotocols=["graphql-transport-ws"]
    ) as websocket:
        _subscribe(websocket, {**only_c1, "after": first[0]})
        missed = [_received(websocket), _received(websocket)]
        assert [change[1:] for change in missed] == [
            ("CB1", "ACTIVE", "OVERWRITTEN"),
            ("CB2", None, "ACTIVE"),
        ]
        wait_for_subscribers(empty_graphql, 1)
        _schedule(empty_graphql, "CB3", callId="CALL-3")
        live = _received(websocket)
        assert live[1:] == ("CB3", None, "ACTIVE")
        change_ids = [int(change[0]) for change in (first, *missed, live)]
        assert change_ids == sorted(set(change_ids)), change_ids
        websocket.send_json({"id": "1", "type": "complete"})


def test_resuming_after_a_pruned_change_is_cursor_expired_and_after_no_change_bad_input(
    empty_graphql: GraphQLClient, database_url: URL
) -> None:
    _setup(empty_graphql)
    _schedule(empty_graphql, "CB1")
    _schedule(empty_graphql, "CB2", callId="CALL-2")
    oldest, newest = (entry.id for entry in _log(database_url))

    async def prune_the_first(session_maker: async_sessionmaker[AsyncSession]) -> int:
        async with session_maker() as session, session.begin():
            entry = await session.get(StatusChangeEntry, oldest)
            assert entry is not None
            entry.changed_at = utc_now() - dt.timedelta(days=8)
        relay = ChangeLogRelay(session_maker, InProcessTransport(), retention=dt.timedelta(days=7))
        return await relay.prune_once()

    assert on_database(database_url, prune_the_first) == 1
    cases = {str(oldest): "CURSOR_EXPIRED", "x1": "BAD_USER_INPUT", "987654": "BAD_USER_INPUT"}
    for after, code in cases.items():
        with empty_graphql.client.websocket_connect(
            "/graphql", subprotocols=["graphql-transport-ws"]
        ) as websocket:
            _subscribe(websocket, {"after": after})
            assert _error_code(websocket) == code, after
    # The newest is kept: resuming after it works, with nothing missed.
    with empty_graphql.client.websocket_connect(
        "/graphql", subprotocols=["graphql-transport-ws"]
    ) as websocket:
        _subscribe(websocket, {"after": str(newest)})
        wait_for_subscribers(empty_graphql, 1)
        _schedule(empty_graphql, "CB3", callId="CALL-3")
        assert _received(websocket)[1] == "CB3"


def test_the_relay_publishes_what_no_transport_took_and_a_hub_takes_each_change_once(
    empty_graphql: GraphQLClient, database_url: URL
) -> None:
    """A change committed by an instance that died before publishing it (written to the log
    unpublished, as `Transactions` writes it for Redis) reaches subscribers through the relay
    of another instance, and a second publication of it is dropped."""
    _setup(empty_graphql)
    _schedule(empty_graphql, "CB1")

    async def scenario(session_maker: async_sessionmaker[AsyncSession]) -> list[str]:
        hub = EventHub(session_maker)
        # A channel of the test's own: other tests' changes must not reach this hub.
        redis = RedisTransport("redis://127.0.0.1:6379/0", f"test:{uuid.uuid4()}")
        await hub.start()
        await redis.start(hub)
        try:
            async with session_maker() as session, session.begin():
                # As the dead instance left it: committed, never published.
                [orphan] = await change_log.append(
                    session,
                    [StatusChange("CB1", CallbackStatus.ACTIVE, CallbackStatus.COMPLETED, T0)],
                    ChangeOrigin("recordCallbackAttempt"),
                    published_at=None,
                )
            relay = ChangeLogRelay(session_maker, redis, retention=dt.timedelta(days=7))
            async with hub.subscribe(ChangeFilter()) as subscriber:
                changes = subscriber.changes()
                # Too young: its own instance may still be publishing it.
                assert await relay.relay_once(now=T0) == 0
                assert await relay.relay_once(now=T0 + PUBLISH_GRACE * 2) == 1
                relayed = await asyncio.wait_for(anext(changes), 10)
                # Published again (a second relay, a catch-up): not delivered again.
                await redis.publish([orphan])
                hub.receive([orphan])
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(anext(changes), 1)
            assert await relay.relay_once(now=T0 + PUBLISH_GRACE * 2) == 0
            return [relayed.callback.callback_id, str(relayed.change_id), str(orphan.change_id)]
        finally:
            await redis.stop()
            await hub.stop()

    callback_id, relayed_id, orphan_id = on_database(database_url, scenario)
    assert (callback_id, relayed_id) == ("CB1", orphan_id)
    assert all(entry.published_at is not None for entry in _log(database_url))


def test_change_ids_follow_commit_order_under_concurrent_mutations(database_url: URL) -> None:
    """Whatever a reader of the log sees is every change up to the newest it sees: a later
    ID never becomes visible before an earlier one (else a subscriber resuming after it
    would skip the earlier one for good)."""

    async def scenario() -> tuple[list[set[int]], set[int]]:
        async with _running_app(database_url) as (app, client):
            await _prepare(client)
            session_maker = app.state.session_maker
            snapshots: list[set[int]] = []
            writing = True

            async def read_while_writing() -> None:
                while writing:
                    async with session_maker() as session:
                        snapshots.append(set(await session.scalars(select(StatusChangeEntry.id))))
                    await asyncio.sleep(0)

            reader = asyncio.create_task(read_while_writing())
            bodies = []
            for wave in range(2):  # 30 at once: within the pool, whose waits are bounded
                bodies += await asyncio.gather(
                    *(
                        post(client, SCHEDULE, _schedule_input(f"CB{n:02d}", f"CALL-{n}", n))
                        for n in range(wave * 30, wave * 30 + 30)
                    )
                )
            writing = False
            await reader
            assert all("errors" not in body for body in bodies), [
                b for b in bodies if "errors" in b
            ][:2]
            async with session_maker() as session:
                final = set(await session.scalars(select(StatusChangeEntry.id)))
            return snapshots, final

    snapshots, final = asyncio.run(scenario())
    assert len(final) == 60
    for seen in snapshots:
        if seen:
            assert {change_id for change_id in final if change_id <= max(seen)} == seen


HISTORIES = """query($filter: StatusChangeFilter) {
  callbacks(first: 50) {
    edges { node { callbackId statusChanges(filter: $filter) {
      totalCount edges { node { changeId previousStatus status madeBy } }
    } } }
  }
}"""


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "general"])
def test_a_callbacks_history_is_what_the_log_holds_in_a_statement_per_level(
    database_url: URL, compiled: bool
) -> None:
    settings = Settings(
        database_url=database_url,
        expiry_sweep_seconds=0,
        open_without_keys=True,
        api_key_cache_seconds=3600,
        compiled_execution=compiled,
    )
    for api in serve_graphql(settings):
        _setup(api)
        _schedule(api, "CB1")
        _schedule(api, "CB2", creationTime=_iso(T0 + dt.timedelta(minutes=1)))
        api.data(ATTEMPT, {"input": {"callbackId": "CB2", "agentId": "A1", "completed": True}})
        histories = api.data(HISTORIES)["callbacks"]["edges"]
        few = len(api.statements)
        expected: dict[str, list[dict[str, Any]]] = {}
        for entry in _log(database_url):
            expected.setdefault(entry.callback_id, []).append(
                {
                    "changeId": str(entry.id),
                    "previousStatus": entry.previous_status and entry.previous_status.value,
                    "status": entry.status.value,
                    "madeBy": entry.made_by,
                }
            )
        assert {
            edge["node"]["callbackId"]: [e["node"] for e in edge["node"]["statusChanges"]["edges"]]
            for edge in histories
        } == expected
        assert all(
            edge["node"]["statusChanges"]["totalCount"] == len(expected[edge["node"]["callbackId"]])
            for edge in histories
        )
        for number in range(3, 8):  # more callbacks, the same statements
            _schedule(api, f"CB{number}", callId=f"CALL-{number}")
        assert len(api.data(HISTORIES)["callbacks"]["edges"]) == 7
        assert len(api.statements) == few
        overwritten = api.data(HISTORIES, {"filter": {"status": {"eq": "OVERWRITTEN"}}})
        assert [
            edge["node"]["callbackId"]
            for edge in overwritten["callbacks"]["edges"]
            if edge["node"]["statusChanges"]["totalCount"]
        ] == ["CB1"]
