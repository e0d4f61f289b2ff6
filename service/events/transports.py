"""How status changes travel from the transaction that made them to every instance's hub.

In-process for the embedded SQLite default; PostgreSQL LISTEN/NOTIFY when the database is
PostgreSQL, so every instance sharing it hears every change; Redis pub/sub when REDIS_URL is
set. Only IDs and statuses travel; receivers load the callbacks themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any, Protocol

import asyncpg
import redis.asyncio as redis
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.events.changes import StatusChange, decode_batch, encode_changes, join_batches
from service.events.hub import EventHub
from service.settings import Settings

logger = logging.getLogger(__name__)

CHANNEL = "pomreport_callback_status"
# NOTIFY payloads must stay under 8000 bytes; one change is well under 200.
_NOTIFY_BATCH_BYTES = 7000
_RECONNECT_SECONDS = 1.0
_STARTUP_WAIT_SECONDS = 3.0


class EventTransport(Protocol):
    """Carries committed status changes to the hubs of all instances."""

    # Whether a change committed but never published (the process died in between) must be
    # published later from the change log: not for NOTIFY, which PostgreSQL delivers at
    # commit, nor in-process, whose subscribers die with the process.
    needs_relay: bool

    async def start(self, hub: EventHub) -> None: ...

    async def stop(self) -> None: ...

    async def stage(self, session: AsyncSession, changes: Sequence[StatusChange]) -> None:
        """Called inside the transaction that made the changes."""

    async def publish(self, changes: Sequence[StatusChange]) -> None:
        """Called after that transaction committed."""


class InProcessTransport:
    """Changes go straight to this process's hub; for a single instance."""

    needs_relay = False

    def __init__(self) -> None:
        self._hub: EventHub | None = None

    async def start(self, hub: EventHub) -> None:
        self._hub = hub

    async def stop(self) -> None:
        self._hub = None

    async def stage(self, session: AsyncSession, changes: Sequence[StatusChange]) -> None:
        return None

    async def publish(self, changes: Sequence[StatusChange]) -> None:
        if self._hub is not None:
            self._hub.receive(changes)


class PostgresqlNotifyTransport:
    """NOTIFY inside the transaction: PostgreSQL delivers it exactly when the transaction
    commits, and never if it rolls back. Each instance LISTENs on its own connection."""

    needs_relay = False

    def __init__(self, database_url: URL) -> None:
        self._dsn = database_url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._hub: EventHub | None = None
        self._listener: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    async def start(self, hub: EventHub) -> None:
        self._hub = hub
        self._listener = asyncio.create_task(self._listen_forever(), name="postgresql-events")
        await _wait_briefly(self.listening)

    async def stop(self) -> None:
        await _cancel(self._listener)
        self._listener = None

    async def _listen_forever(self) -> None:
        """LISTEN on a connection of its own; when it drops, reconnect (the database may be
        restarting) rather than give up."""
        while True:
            connection: asyncpg.Connection | None = None
            try:
                connection = await asyncpg.connect(self._dsn, timeout=10)
                lost = asyncio.Event()
                connection.add_termination_listener(lambda _connection, lost=lost: lost.set())
                await connection.add_listener(CHANNEL, self._on_notification)
                if self._hub is not None:
                    await self._hub.catch_up()
                self.listening.set()
                await lost.wait()
                logger.warning("lost the PostgreSQL LISTEN connection; reconnecting")
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as error:
                logger.warning("cannot LISTEN for status changes (%s); retrying", error)
            finally:
                self.listening.clear()
                if connection is not None:
                    with contextlib.suppress(Exception):
                        await connection.close(timeout=2)
            await asyncio.sleep(_RECONNECT_SECONDS)

    async def stage(self, session: AsyncSession, changes: Sequence[StatusChange]) -> None:
        for payload in join_batches(encode_changes(changes), _NOTIFY_BATCH_BYTES):
            await session.execute(
                text("SELECT pg_notify(:channel, :payload)"),
                {"channel": CHANNEL, "payload": payload},
            )

    async def publish(self, changes: Sequence[StatusChange]) -> None:
        return None

    def _on_notification(self, _connection: Any, _pid: int, _channel: str, payload: object) -> None:
        if self._hub is not None:
            self._hub.receive(decode_batch(str(payload)))


class RedisTransport:
    """PUBLISH after commit; each instance SUBSCRIBEs. What a crash between commit and publish
    (or a Redis outage) kept from being published, the relay publishes from the change log."""

    needs_relay = True

    def __init__(self, redis_url: str, channel: str) -> None:
        self._channel = channel
        self._client: redis.Redis = redis.Redis.from_url(
            redis_url, socket_connect_timeout=2, socket_timeout=5
        )
        self._listener: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    async def start(self, hub: EventHub) -> None:
        self._listener = asyncio.create_task(self._listen_forever(hub), name="redis-events")
        await _wait_briefly(self.listening)

    async def stop(self) -> None:
        await _cancel(self._listener)
        self._listener = None
        await self._client.aclose()

    async def _listen_forever(self, hub: EventHub) -> None:
        while True:
            try:
                await self._listen(hub)
            except (OSError, redis.RedisError) as error:
                logger.warning("cannot SUBSCRIBE for status changes (%s); retrying", error)
            self.listening.clear()
            await asyncio.sleep(_RECONNECT_SECONDS)

    async def stage(self, session: AsyncSession, changes: Sequence[StatusChange]) -> None:
        return None

    async def publish(self, changes: Sequence[StatusChange]) -> None:
        for payload in join_batches(encode_changes(changes), 256_000):
            await self._client.publish(self._channel, payload)

    async def _listen(self, hub: EventHub) -> None:
        pubsub = self._client.pubsub()
        try:
            await pubsub.subscribe(self._channel)
            await hub.catch_up()
            self.listening.set()
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    data = message["data"]
                    hub.receive(decode_batch(data.decode() if isinstance(data, bytes) else data))
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]


async def _wait_briefly(listening: asyncio.Event) -> None:
    """Give the listener a moment, so changes right after start reach early subscribers; an
    unreachable broker must not keep the service from starting, so go on after that."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(listening.wait(), _STARTUP_WAIT_SECONDS)


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    except Exception:
        # A listener that died earlier must not keep shutdown from cleaning up the rest.
        logger.exception("event listener had failed")


class CallbackEvents:
    """The chosen transport and this instance's hub, started and stopped together."""

    def __init__(self, transport: EventTransport, hub: EventHub) -> None:
        self.transport = transport
        self.hub = hub

    async def start(self) -> None:
        """Start delivering, then start hearing changes from the transport."""
        await self.hub.start()
        await self.transport.start(self.hub)

    async def stop(self) -> None:
        """Stop hearing changes, then stop delivering."""
        await self.transport.stop()
        await self.hub.stop()


def create_callback_events(
    settings: Settings, session_maker: async_sessionmaker[AsyncSession]
) -> CallbackEvents:
    """Redis when REDIS_URL is set, else LISTEN/NOTIFY on PostgreSQL, else in-process."""
    transport: EventTransport
    if settings.redis_url:
        transport = RedisTransport(settings.redis_url, f"{settings.redis_prefix}callback-status")
    elif not settings.is_sqlite:
        transport = PostgresqlNotifyTransport(settings.database_url)
    else:
        transport = InProcessTransport()
    return CallbackEvents(transport, EventHub(session_maker, backlog=settings.subscriber_backlog))
