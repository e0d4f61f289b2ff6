"""The SPEC 2.3 invariants under concurrent requests, on both stores."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
from typing import Any

import httpx
from sqlalchemy.engine import URL
from starlette.applications import Starlette

from service.app import create_app
from service.db.models.callback import CallbackStatus
from service.events.changes import StatusChange
from service.events.hub import ChangeFilter, DeliveredChange
from service.settings import Settings
from tests.callbacks.test_rules import T0, _iso
from tests.graphql_client import post, running_app

SETUP = """mutation {
  upsertCampaign(input: {name: "Spring Renewals", campaignType: FINITE,
                         strategy: "Sales_Strategy", maxAttempts: 2}) { name }
  upsertAgent(input: {agentId: "A1", name: "Ava"}) { agentId }
  upsertContact(input: {contactId: "C1", firstName: "Noah", lastName: "Kim",
                        phone: "+1 555 0100", timeZone: "America/Chicago"}) { contactId }
}"""
SCHEDULE = (
    "mutation($input: ScheduleCallbackInput!) { scheduleCallback(input: $input) { callbackId } }"
)
COMPLETE = """mutation($id: String!) {
  recordCallbackAttempt(input: {callbackId: $id, agentId: "A1", completed: true,
                                customCompletionCode: "Sale"}) { callbackStatus }
}"""


def _running_app(
    database_url: URL,
) -> contextlib.AbstractAsyncContextManager[tuple[Starlette, httpx.AsyncClient]]:
    return running_app(
        Settings(open_without_keys=True, database_url=database_url, expiry_sweep_seconds=0)
    )


async def _prepare(client: httpx.AsyncClient) -> None:
    assert "errors" not in await post(client, SETUP)
    started = await post(
        client,
        'mutation { startJob(input: {jobId: 7, campaignName: "Spring Renewals"}) { jobId } }',
    )
    assert "errors" not in started


def _schedule_input(callback_id: str, call_id: str, minute: int) -> dict[str, Any]:
    return {
        "input": {
            "callbackId": callback_id,
            "callbackType": "CAMPAIGN",
            "jobId": 7,
            "creatorAgentId": "A1",
            "contactId": "C1",
            "callId": call_id,
            "creationTime": _iso(T0 + dt.timedelta(minutes=minute)),
            "scheduledStartTime": _iso(T0 + dt.timedelta(hours=2)),
            "scheduledEndTime": _iso(T0 + dt.timedelta(days=400)),
        }
    }


def test_concurrent_schedules_on_one_call_leave_exactly_one_active(database_url: URL) -> None:
    async def scenario() -> None:
        async with _running_app(database_url) as (_app, client):
            await _prepare(client)
            bodies = await asyncio.gather(
                *(
                    post(client, SCHEDULE, _schedule_input(f"CB{n:02d}", "CALL-1", n))
                    for n in range(50)
                )
            )
            assert all("errors" not in body for body in bodies), [
                b for b in bodies if "errors" in b
            ][:2]
            listed = await post(
                client,
                "{ callbacks(first: 100) { edges { node { callbackId callbackStatus } } } }",
            )
            statuses = {
                edge["node"]["callbackId"]: edge["node"]["callbackStatus"]
                for edge in listed["data"]["callbacks"]["edges"]
            }
            assert len(statuses) == 50
            # The latest by creation time stays ACTIVE; every other one was overwritten.
            assert [cid for cid, status in statuses.items() if status == "ACTIVE"] == ["CB49"]
            assert collections.Counter(statuses.values()) == {"ACTIVE": 1, "OVERWRITTEN": 49}

    asyncio.run(scenario())


def test_terminate_racing_completions_gives_one_terminal_state_and_one_event_each(
    database_url: URL,
) -> None:
    async def scenario() -> None:
        async with _running_app(database_url) as (app, client):
            await _prepare(client)
            ids = [f"CB{n:02d}" for n in range(20)]
            for n, callback_id in enumerate(ids):
                body = await post(client, SCHEDULE, _schedule_input(callback_id, f"CALL-{n}", n))
                assert "errors" not in body
            hub = app.state.events.hub
            # The terminal changes only: a schedule's NOTIFY may still be on its way.
            terminal = frozenset({CallbackStatus.COMPLETED, CallbackStatus.CAMPAIGN_TERMINATED})
            async with hub.subscribe(ChangeFilter(statuses=terminal)) as subscriber:
                changes = subscriber.changes()
                terminate = post(
                    client,
                    'mutation { terminateCampaign(name: "Spring Renewals") { changedCount } }',
                )
                results = await asyncio.gather(
                    terminate, *(post(client, COMPLETE, {"id": cid}) for cid in ids)
                )
                received: list[DeliveredChange] = []
                while len(received) < len(ids):
                    received.append(await asyncio.wait_for(anext(changes), 15.0))
                # Then nothing more: a duplicate event would arrive within this quiet period.
                with contextlib.suppress(TimeoutError):
                    received.append(await asyncio.wait_for(anext(changes), 1.0))
            terminated = results[0]["data"]["terminateCampaign"]["changedCount"]
            completed = [
                cid for cid, body in zip(ids, results[1:], strict=True) if "errors" not in body
            ]
            refused = [
                body["errors"][0]["extensions"]["code"] for body in results[1:] if "errors" in body
            ]
            assert set(refused) <= {"CONFLICT"}
            assert terminated + len(completed) == 20
            by_callback = collections.Counter(change.callback.callback_id for change in received)
            assert by_callback == dict.fromkeys(ids, 1), by_callback
            for change in received:
                expected = (
                    "COMPLETED"
                    if change.callback.callback_id in completed
                    else "CAMPAIGN_TERMINATED"
                )
                assert change.status.value == expected
                assert change.previous_status is not None
                assert change.previous_status.value == "ACTIVE"
                assert change.callback.status.value == expected

    asyncio.run(scenario())


def test_concurrent_creation_of_one_job_or_callback_id_is_an_answer_not_a_failure(
    database_url: URL,
) -> None:
    async def scenario() -> None:
        async with _running_app(database_url) as (_app, client):
            assert "errors" not in await post(client, SETUP)
            start = (
                'mutation { startJob(input: {jobId: 7, campaignName: "Spring Renewals"})'
                " { jobId } }"
            )
            started = await asyncio.gather(*(post(client, start) for _ in range(8)))
            assert all(body == {"data": {"startJob": {"jobId": 7}}} for body in started), started
            same_id = await asyncio.gather(
                *(
                    post(client, SCHEDULE, _schedule_input("CB-SAME", f"CALL-{n}", n))
                    for n in range(8)
                )
            )
            codes = collections.Counter(
                body["errors"][0]["extensions"]["code"] if "errors" in body else "OK"
                for body in same_id
            )
            assert codes == {"OK": 1, "CONFLICT": 7}

    asyncio.run(scenario())


def test_events_of_unknown_callbacks_load_in_chunks(database_url: URL) -> None:
    async def scenario() -> None:
        async with _running_app(database_url) as (app, _client):
            now = dt.datetime.now(dt.UTC)
            changes = [
                StatusChange(f"X{n}", None, CallbackStatus.ACTIVE, now) for n in range(40_000)
            ]
            # More IDs than one PostgreSQL statement may carry; none exists, none is delivered.
            assert await app.state.events.hub.load(changes) == []

    asyncio.run(scenario())


def test_a_broker_failure_after_commit_does_not_fail_the_mutation(database_url: URL) -> None:
    async def scenario() -> None:
        settings = Settings(
            database_url=database_url,
            expiry_sweep_seconds=0,
            redis_url="redis://127.0.0.1:1/0",
            open_without_keys=True,
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://p") as client:
                await _prepare(client)
                body = await post(client, SCHEDULE, _schedule_input("CB1", "CALL-1", 0))
                assert body == {"data": {"scheduleCallback": {"callbackId": "CB1"}}}

    asyncio.run(scenario())
