"""Rate limits per API key: a token bucket per key, sized by its role; over it, HTTP 429 with
Retry-After and RATE_LIMITED, on POST and GET /graphql, the CSV download and each operation a
WebSocket starts (the socket stays open); shared by instances through Redis, and no refusal
when Redis cannot be reached."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
import redis
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.testclient import TestClient

from service.app import create_app
from service.auth.api_keys import Principal, create_api_key
from service.auth.rate_limits import InProcessBuckets, RateLimiter, RedisBuckets
from service.db.models.api_key import Role
from service.errors import RateLimitedError
from service.reports.callbacks_scheduled_details.csv_links import CSV_PATH
from service.settings import RateLimit, Settings
from tests.auth.test_authorization import SUBSCRIPTION
from tests.auth.test_key_lifetime import _code, _result, _schedule_one_callback, _start
from tests.events.test_subscription import wait_for_subscribers
from tests.graphql_client import on_database, serve_graphql

REDIS_URL = os.environ.get("POMREPORT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
QUERY = "{ campaigns { totalCount } }"
# Three requests at once, then one every 100 s: no test runs long enough to see a refill.
TINY = RateLimit(per_second=0.01, burst=3)
ROLES = ("viewer", "agent", "operator", "admin")


class FakeClock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _settings(url: URL, **changes: Any) -> Settings:
    limits: dict[str, Any] = {f"rate_limit_{role}": TINY for role in ROLES}
    return Settings(database_url=url, expiry_sweep_seconds=0, **{**limits, **changes})


def _keys(url: URL) -> dict[str, str]:
    """A key per role, and a second viewer key."""

    async def issue(sessions: async_sessionmaker[AsyncSession]) -> dict[str, str]:
        keys = {}
        for name, role, agent in [
            ("viewer", Role.VIEWER, None),
            ("other viewer", Role.VIEWER, None),
            ("agent", Role.AGENT, "A1"),
            ("operator", Role.OPERATOR, None),
        ]:
            _row, keys[name] = await create_api_key(sessions, role, agent_id=agent, name=name)
        return keys

    return on_database(url, issue)


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _post(client: TestClient, key: str | None) -> httpx2.Response:
    headers = _bearer(key) if key else {}
    return client.post("/graphql", json={"query": QUERY}, headers=headers)


def _assert_rate_limited(response: httpx2.Response) -> int:
    """Assert a 429 refusal with its code and Retry-After; return the seconds to wait."""
    assert response.status_code == 429, response.text
    retry_after = int(response.headers["retry-after"])  # whole seconds
    assert retry_after >= 1
    error = response.json()["errors"][0]
    assert error["extensions"] == {"code": "RATE_LIMITED", "retryAfter": retry_after}
    assert "3 at once" in error["message"]
    return retry_after


async def test_a_bucket_gives_its_burst_then_refills_at_its_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(InProcessBuckets(clock), {Role.VIEWER: RateLimit(2, 4)})
    viewer = Principal(Role.VIEWER, None, 1, "v")
    for _ in range(4):
        await limiter.check(viewer)
    with pytest.raises(RateLimitedError) as refused:
        await limiter.check(viewer)
    assert refused.value.retry_after == 1  # half a second, rounded up to a whole one
    clock.now += 0.5  # one token back
    await limiter.check(viewer)
    with pytest.raises(RateLimitedError):
        await limiter.check(viewer)
    clock.now += 3600  # never more than the burst
    for _ in range(4):
        await limiter.check(viewer)
    with pytest.raises(RateLimitedError):
        await limiter.check(viewer)
    # Another key has a bucket of its own; a request without a key has none.
    await limiter.check(Principal(Role.VIEWER, None, 2, "w"))
    for _ in range(10):
        await limiter.check(Principal(Role.ADMIN, None, None, "open development mode"))


async def test_retry_after_is_how_long_until_a_token_is_back() -> None:
    limiter = RateLimiter(InProcessBuckets(FakeClock()), {Role.AGENT: RateLimit(0.1, 1)})
    agent = Principal(Role.AGENT, "A1", 7, "a")
    await limiter.check(agent)
    with pytest.raises(RateLimitedError) as refused:
        await limiter.check(agent)
    assert refused.value.retry_after == 10
    assert refused.value.extensions == {"code": "RATE_LIMITED", "retryAfter": 10}


def test_over_the_limit_post_and_get_graphql_answer_429_with_retry_after(
    database_url: URL, caplog: pytest.LogCaptureFixture
) -> None:
    keys = _keys(database_url)
    with (
        caplog.at_level(logging.INFO, logger="service.requests"),
        TestClient(create_app(_settings(database_url))) as client,
    ):
        # POST and GET draw on one bucket per key.
        assert _post(client, keys["viewer"]).status_code == 200
        get = client.get("/graphql", params={"query": QUERY}, headers=_bearer(keys["viewer"]))
        assert get.status_code == 200
        assert _post(client, keys["viewer"]).json() == {"data": {"campaigns": {"totalCount": 0}}}
        caplog.clear()
        retry_after = _assert_rate_limited(_post(client, keys["viewer"]))
        assert retry_after == 100  # one token at 0.01 a second
        # The request log names the key that was refused.
        (line,) = [r for r in caplog.records if r.name == "service.requests"]
        noted = vars(line)
        assert (noted["outcome"], noted["status"], noted["role"]) == ("http_429", 429, "viewer")
        get = client.get("/graphql", params={"query": QUERY}, headers=_bearer(keys["viewer"]))
        _assert_rate_limited(get)
        # In the media type the client asked for.
        legacy = client.post(
            "/graphql",
            json={"query": QUERY},
            headers={**_bearer(keys["viewer"]), "Accept": "application/json"},
        )
        assert legacy.headers["content-type"] == "application/json"
        _assert_rate_limited(legacy)

        # Each key has its own bucket, sized by its role.
        for _ in range(3):
            assert _post(client, keys["other viewer"]).status_code == 200
            assert _post(client, keys["agent"]).status_code == 200
        _assert_rate_limited(_post(client, keys["agent"]))
        # A request without a key, or with a bad one, is refused as before: no key, no bucket.
        assert _post(client, None).status_code == 401
        assert _post(client, "pomr_not-a-key").status_code == 401


def test_the_csv_download_counts_against_its_key(database_url: URL) -> None:
    keys = _keys(database_url)
    with TestClient(create_app(_settings(database_url))) as client:
        url = f"{CSV_PATH}?preset=ALL"
        for _ in range(2):
            assert client.get(url, headers=_bearer(keys["viewer"])).status_code == 200
        assert _post(client, keys["viewer"]).status_code == 200
        refused = client.get(url, headers=_bearer(keys["viewer"]))
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) == 100
        assert refused.text.startswith("too many requests with this API key")
        assert client.get(url, headers=_bearer(keys["other viewer"])).status_code == 200


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
def test_a_websocket_operation_over_the_limit_is_refused_and_the_socket_stays_open(
    database_url: URL, protocol: str
) -> None:
    keys = _keys(database_url)
    settings = _settings(database_url, rate_limit_operator=RateLimit(1000, 1000))
    with (
        contextlib.contextmanager(serve_graphql)(settings) as api,
        api.client.websocket_connect("/graphql", subprotocols=[protocol]) as websocket,
    ):
        api.headers = _bearer(keys["operator"])
        websocket.send_json({"type": "connection_init", "payload": _bearer(keys["viewer"])})
        assert websocket.receive_json()["type"] == "connection_ack"
        # The handshake and connection_init take no token; each operation started does.
        assert _post(api.client, keys["viewer"]).status_code == 200
        assert _post(api.client, keys["viewer"]).status_code == 200
        _start(websocket, protocol, "s1", SUBSCRIPTION)  # the third token
        wait_for_subscribers(api, 1)
        _start(websocket, protocol, "s2", SUBSCRIPTION)
        refused = _result(websocket)
        assert _code(refused) == "RATE_LIMITED"
        assert refused["errors"][0]["extensions"]["retryAfter"] == 100
        # The socket and its running subscription go on: changes are delivered, and take no
        # token (the bucket is empty).
        _schedule_one_callback(api)
        delivered = _result(websocket)
        assert delivered["data"]["callbackStatusChanged"]["callback"]["callbackId"] == "CB-LATE"
        _assert_rate_limited(_post(api.client, keys["viewer"]))


def test_limits_can_be_turned_off(database_url: URL) -> None:
    keys = _keys(database_url)
    with TestClient(create_app(_settings(database_url, rate_limits=False))) as client:
        for _ in range(10):
            assert _post(client, keys["viewer"]).status_code == 200


def test_open_development_mode_has_no_bucket(database_url: URL) -> None:
    settings = _settings(database_url, open_without_keys=True)
    with TestClient(create_app(settings)) as client:
        for _ in range(10):
            assert _post(client, None).status_code == 200


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own in the machine's Redis; its keys deleted afterwards."""
    prefix = f"pomreport-test:{uuid.uuid4().hex}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    try:
        for name in client.scan_iter(match=f"{prefix}*"):
            client.delete(name)
    finally:
        client.close()


def test_instances_share_one_bucket_through_redis(database_url: URL, redis_prefix: str) -> None:
    keys = _keys(database_url)
    settings = _settings(database_url, redis_url=REDIS_URL, redis_prefix=redis_prefix)
    with (
        TestClient(create_app(settings)) as first,
        TestClient(create_app(settings)) as second,
    ):
        assert _post(first, keys["viewer"]).status_code == 200
        assert _post(second, keys["viewer"]).status_code == 200
        assert _post(first, keys["viewer"]).status_code == 200
        # The bucket of three is empty on both instances, though each served fewer.
        _assert_rate_limited(_post(second, keys["viewer"]))
        _assert_rate_limited(_post(first, keys["viewer"]))
        assert _post(second, keys["other viewer"]).status_code == 200
    stored = redis.Redis.from_url(REDIS_URL)
    try:
        buckets = sorted(name.decode() for name in stored.scan_iter(match=f"{redis_prefix}*"))
        # Redis forgets a bucket once it would be full again (here after 300 s and a bit).
        assert 0 < stored.pttl(buckets[0]) <= 301_000
    finally:
        stored.close()
    assert len(buckets) == 2  # the viewer's and the other viewer's


async def test_an_unreachable_redis_refuses_nobody(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    # Nothing listens on port 1: the connection is refused at once.
    buckets = RedisBuckets("redis://127.0.0.1:1/0", "pomreport-test:", clock=clock)
    limiter = RateLimiter(buckets, {Role.VIEWER: RateLimit(0.01, 1)})
    viewer = Principal(Role.VIEWER, None, 1, "v")
    try:
        with caplog.at_level(logging.WARNING, logger="service.auth.rate_limits"):
            for _ in range(5):
                await limiter.check(viewer)  # over the burst of one, and let through
            clock.now += 5  # then Redis is tried again
            await limiter.check(viewer)
    finally:
        await limiter.close()
    warnings = [r.getMessage() for r in caplog.records if r.name == "service.auth.rate_limits"]
    # One warning per try, not one a request: after a failure Redis rests for 5 s.
    assert len(warnings) == 2
    assert warnings[0].startswith("rate limits are off for 5 s: Redis did not answer")


def test_the_redis_script_refills_on_redis_time(redis_prefix: str) -> None:
    async def run() -> list[float]:
        buckets = RedisBuckets(REDIS_URL, redis_prefix)
        try:
            limit = RateLimit(per_second=50, burst=2)
            waits = [await buckets.take("b", limit) for _ in range(3)]
            await asyncio.sleep(0.05)  # 2.5 tokens' worth at 50 a second: one back
            waits.append(await buckets.take("b", limit))
            return waits
        finally:
            await buckets.close()

    first, second, refused, refilled = asyncio.run(run())
    assert (first, second) == (0, 0)
    assert 0 < refused <= 0.02  # a token every 20 ms
    assert refilled == 0
