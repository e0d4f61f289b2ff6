"""Rate limits per API key: a token bucket per key, its size and refill set by the key's role.

Each key's bucket holds up to `burst` tokens and refills at `per_second`; a request takes one,
and a request that finds less than one is refused with RATE_LIMITED and how long until one is
there. With REDIS_URL set the buckets live in Redis, updated by one Lua script (atomic, on
Redis's own clock), so every instance draws on the same bucket; otherwise each process keeps
its own. Requests that carry no key (open development mode, or behind a proxy that
authenticates with `--allow-unauthenticated`) have no bucket.

A Redis that cannot be reached does not refuse anyone: requests then go unlimited, with a
warning in the log, and Redis is tried again after a few seconds.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Protocol

import redis.asyncio as redis

from service.auth.api_keys import Principal
from service.db.models.api_key import Role
from service.errors import RateLimitedError
from service.settings import RateLimit, Settings

logger = logging.getLogger(__name__)

# A rate-limit check waits at most this long for Redis: it sits in front of every request.
REDIS_TIMEOUT_SECONDS = 0.25
# After Redis failed to answer, requests go unlimited for this long before it is tried again,
# so an outage costs one timeout now and then, not one per request.
REDIS_RETRY_SECONDS = 5.0

# KEYS[1]: the bucket; ARGV: tokens a second, burst. Returns the seconds until a token is
# there: "0" when the request took one. Tokens and time travel as text: Redis turns a Lua
# number into an integer. Time is Redis's, so instances whose clocks differ agree.
TAKE_TOKEN_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = burst
else
  tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
end
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""


class TokenBuckets(Protocol):
    """Where the buckets live."""

    async def take(self, bucket: str, limit: RateLimit) -> float:
        """Take a token from `bucket`; return 0, or the seconds until one is there."""
        ...

    async def close(self) -> None:
        """Let go of any connection."""
        ...


class InProcessBuckets:
    """This process's buckets. One per key that made a request, never more: only keys the
    database knows reach a bucket, so the number stays that of the keys issued."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # tokens, and when they were

    async def take(self, bucket: str, limit: RateLimit) -> float:
        now = self._clock()
        tokens, at = self._buckets.get(bucket, (float(limit.burst), now))
        tokens = min(float(limit.burst), tokens + max(0.0, now - at) * limit.per_second)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / limit.per_second
        self._buckets[bucket] = (tokens, now)
        return wait

    async def close(self) -> None:
        return None


class RedisBuckets:
    """Buckets in Redis, shared by every instance; unlimited while Redis does not answer."""

    def __init__(
        self, redis_url: str, prefix: str, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._client: redis.Redis = redis.Redis.from_url(
            redis_url,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
        )
        self._script = self._client.register_script(TAKE_TOKEN_SCRIPT)
        self._prefix = prefix
        self._clock = clock
        self._unreachable_until = float("-inf")

    async def take(self, bucket: str, limit: RateLimit) -> float:
        if self._clock() < self._unreachable_until:
            return 0.0
        try:
            wait = await self._script(
                keys=[self._prefix + bucket], args=[repr(limit.per_second), limit.burst]
            )
        except (OSError, TimeoutError, redis.RedisError) as error:
            self._unreachable_until = self._clock() + REDIS_RETRY_SECONDS
            logger.warning(
                "rate limits are off for %.0f s: Redis did not answer (%s)",
                REDIS_RETRY_SECONDS,
                error,
            )
            return 0.0
        return float(wait)

    async def close(self) -> None:
        await self._client.aclose()


class RateLimiter:
    """Refuses a key's request when its bucket is empty."""

    def __init__(self, buckets: TokenBuckets, limits: Mapping[Role, RateLimit]) -> None:
        self._buckets = buckets
        self._limits = dict(limits)

    async def check(self, principal: Principal) -> None:
        """Take a token for the principal's key; raises RateLimitedError when there is none."""
        if principal.key_id is None:
            return  # no key, no bucket: open development mode, or a proxy that authenticates
        limit = self._limits.get(principal.role)
        if limit is None:
            return
        wait = await self._buckets.take(f"key:{principal.key_id}", limit)
        if wait <= 0:
            return
        retry_after = max(1, math.ceil(wait))
        raise RateLimitedError(
            f"too many requests with this API key: a {principal.role.value} key may make "
            f"{limit.per_second:g} a second, {limit.burst} at once; retry in {retry_after} s",
            retry_after=retry_after,
        )

    async def close(self) -> None:
        """Let go of the buckets' connection, if any."""
        await self._buckets.close()


def create_rate_limiter(settings: Settings) -> RateLimiter:
    """The limits the settings ask for: in Redis when REDIS_URL is set, else in-process."""
    if not settings.rate_limits:
        return RateLimiter(InProcessBuckets(), {})
    buckets: TokenBuckets = (
        RedisBuckets(settings.redis_url, f"{settings.redis_prefix}rate-limit:")
        if settings.redis_url
        else InProcessBuckets()
    )
    return RateLimiter(
        buckets,
        {
            Role.VIEWER: settings.rate_limit_viewer,
            Role.AGENT: settings.rate_limit_agent,
            Role.OPERATOR: settings.rate_limit_operator,
            Role.ADMIN: settings.rate_limit_admin,
        },
    )
