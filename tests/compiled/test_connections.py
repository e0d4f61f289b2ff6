"""The compiled path's use of the pool: more requests than connections all get their answer,
and every connection goes back."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy.engine import URL

from service.app import create_app
from service.settings import Settings

REPORT = {
    "query": "{ callbacksScheduledDetails(timePeriod: {preset: ALL}) {"
    " totalRecords rows(first: 5) { edges { node { callbackId } } } } }"
}


async def test_more_reports_than_connections_all_answer_and_give_every_connection_back(
    seeded_database_url: URL,
) -> None:
    # Each report wants a second connection for its total; with none spare it runs the total
    # on its first, after or between the rows' statements, never opening another.
    settings = Settings(
        open_without_keys=True,
        database_url=seeded_database_url,
        expiry_sweep_seconds=0,
        pool_size=2,
        pool_timeout_seconds=10,
    )
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://pomreport", timeout=60
        ) as client,
    ):
        responses = await asyncio.gather(*(client.post("/graphql", json=REPORT) for _ in range(16)))
        bodies = [response.json() for response in responses]
        assert {response.status_code for response in responses} == {200}
        assert all(body == bodies[0] for body in bodies)
        assert bodies[0]["data"]["callbacksScheduledDetails"]["totalRecords"] > 0
        assert app.state.compiled_queries.answered == 16
        assert app.state.engine.pool.checkedout() == 0
