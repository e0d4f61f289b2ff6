"""Expiry by the sweeper, by several instances at once, and changes too big for one NOTIFY."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
from collections.abc import AsyncIterator

import httpx
from sqlalchemy import select
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette

from service.app import create_app
from service.callbacks import rules
from service.callbacks.expiry_sweeper import expire_due_callbacks_now
from service.callbacks.transactions import Outcome
from service.db.models.callback import Callback, CallbackStatus, CallbackType
from service.events.change_log import ChangeOrigin
from service.events.hub import ChangeFilter, DeliveredChange, Subscriber
from service.settings import Settings
from tests.events.test_concurrency import SETUP
from tests.graphql_client import post

NOW = dt.datetime.now(dt.UTC)


@contextlib.asynccontextmanager
async def _instance(url: URL, sweep_seconds: float = 0) -> AsyncIterator[Starlette]:
    app = create_app(
        Settings(open_without_keys=True, database_url=url, expiry_sweep_seconds=sweep_seconds)
    )
    async with app.router.lifespan_context(app):
        yield app


async def _prepare_due_callbacks(app: Starlette, count: int) -> None:
    """`count` ACTIVE callbacks whose scheduled end has passed, scheduled in one transaction."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://p"
    ) as client:
        assert "errors" not in await post(client, SETUP)
        assert "errors" not in await post(
            client,
            'mutation { startJob(input: {jobId: 7, campaignName: "Spring Renewals"}) { jobId } }',
        )

    async def schedule_all(session: AsyncSession) -> Outcome[None]:
        for number in range(count):
            await rules.schedule_callback(
                session,
                callback_id=f"CB{number:04d}",
                callback_type=CallbackType.CAMPAIGN,
                job_id=7,
                creator_agent_id="A1",
                created_for_agent_id=None,
                contact_id="C1",
                call_id=f"CALL-{number}",
                created_at=NOW - dt.timedelta(days=2),
                scheduled_start_at=NOW - dt.timedelta(days=2),
                scheduled_end_at=NOW - dt.timedelta(days=1),
                now=NOW,
            )
        return Outcome(None)

    await app.state.transactions.run(schedule_all, ChangeOrigin("test setup"))


async def _collect(subscriber: Subscriber, expected: int) -> list[DeliveredChange]:
    changes = subscriber.changes()
    received = [await asyncio.wait_for(anext(changes), 15.0) for _ in range(expected)]
    with contextlib.suppress(TimeoutError):
        received.append(await asyncio.wait_for(anext(changes), 1.0))
    return received


async def _statuses(app: Starlette) -> collections.Counter[CallbackStatus]:
    async with app.state.session_maker() as session:
        return collections.Counter(await session.scalars(select(Callback.status)))


def test_sweeper_in_serve_expires_due_callbacks(database_url: URL) -> None:
    async def scenario() -> None:
        async with _instance(database_url) as app:
            await _prepare_due_callbacks(app, 3)
        async with _instance(database_url, sweep_seconds=0.1) as app:
            deadline = asyncio.get_running_loop().time() + 10
            while (await _statuses(app))[CallbackStatus.EXPIRED] < 3:
                assert asyncio.get_running_loop().time() < deadline, await _statuses(app)
                await asyncio.sleep(0.1)

    asyncio.run(scenario())


def test_instances_sweeping_at_once_expire_each_callback_once(database_url: URL) -> None:
    async def scenario() -> None:
        async with _instance(database_url) as first, _instance(database_url) as second:
            await _prepare_due_callbacks(first, 300)
            async with first.state.events.hub.subscribe(ChangeFilter()) as subscriber:
                counts = await asyncio.gather(
                    *(
                        expire_due_callbacks_now(app.state.transactions)
                        for app in (first, second, first, second)
                    )
                )
                # In-process events (SQLite) reach only the instance that made them; through
                # PostgreSQL every instance hears all 300, in NOTIFY payloads of many batches.
                shared = not first.state.settings.is_sqlite
                heard = 300 if shared else counts[0] + counts[2]
                received = await _collect(subscriber, heard)
            assert sum(counts) == 300
            assert (await _statuses(first))[CallbackStatus.EXPIRED] == 300
            by_callback = collections.Counter(change.callback.callback_id for change in received)
            # Each callback heard of once (on SQLite the second instance may have swept all).
            assert len(by_callback) == heard
            assert set(by_callback.values()) <= {1}
            assert all(change.status is CallbackStatus.EXPIRED for change in received)

    asyncio.run(scenario())
