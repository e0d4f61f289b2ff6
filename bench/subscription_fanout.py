"""Benchmark subscription fan-out: N WebSocket subscribers of one instance, M status changes.

Usage:
    .venv/bin/python bench/subscription_fanout.py [--subscribers 1000] [--changes 100]
        [--filters K] [--database-url URL | --postgresql-server URL] [--settle]
        [--compression none]
        [--connect-concurrency 50] [--stall-seconds 30] [--json FILE] [--server-profile FILE]

The server is the real `pomreport serve` in a child process (`python -m service.cli serve` on a
free loopback port, POMREPORT_EXPIRY_SWEEP_SECONDS=0, its log in a temporary file). The store:

- default: a fresh SQLite file in a temporary directory, migrated with `pomreport migrate`;
  status changes travel in-process to the hub;
- --database-url URL: that database (migrated with `pomreport migrate` first; every run uses
  callback IDs of its own, so the database may be reused); PostgreSQL carries the changes by
  LISTEN/NOTIFY;
- --postgresql-server URL (e.g. postgresql://postgres@127.0.0.1:5432/test): CREATE DATABASE a
  fresh one on that server, migrate it, run, DROP it afterwards.

Steps:

1. setup through GraphQL over HTTP: upsertCampaign (when missing), upsertAgent,
   upsertContact, startJob, and three scheduleCallbacks with no subscriber (the server has then
   run every code path once); the server's VmRSS (from /proc/<pid>/status) is the baseline;
2. N clients (all in this process, one asyncio task each reading its connection and recording
   a monotonic timestamp and the raw frame; nothing is parsed until the end) connect with
   graphql-transport-ws and subscribe to `callbackStatusChanged { previousStatus status
   changedAt callback { callbackId callbackStatus } }`; since a subscription starts
   asynchronously, warm-up callbacks are scheduled until every client has received one; then
   the server's VmRSS again: memory per subscriber is the difference over N;
3. M scheduleCallback mutations (each makes exactly one change, ACTIVE with no previous status)
   sent over one keep-alive HTTP connection one after another, each as soon as the previous
   response arrived (with --settle: only once every subscriber received the previous change);
   the time just before each is sent is that change's start;
4. wait until N*M deliveries arrived (or none arrived for --stall-seconds); every
   (subscriber, change) delivery latency is its receive time minus its change's start.

Printed (and written as JSON with --json): latency median, p90, p99, max in ms; deliveries
received vs expected; errors and `complete` messages (a subscriber closed as too slow gets an
error with code SUBSCRIBER_TOO_SLOW); per change, the first and the last subscriber's latency
(the spread is the fan-out time); mutation response times; server and client CPU seconds during
the changes; VmRSS before, with subscribers, after the changes, and VmHWM.

Clients offer permessage-deflate like browsers do (uvicorn accepts it), so the server compresses
every frame; --compression none measures without. The clients share this process's event loop
(uvloop when installed); its CPU time is printed to show whether the client side kept up.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import dataclasses
import gc
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
from sqlalchemy.engine import make_url
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

DEFAULT_POSTGRESQL_SERVER = "postgresql://postgres@127.0.0.1:5432/test"
REPOSITORY = Path(__file__).resolve().parent.parent
PROTOCOL = Subprotocol("graphql-transport-ws")

SUBSCRIPTION = """subscription {
  callbackStatusChanged { previousStatus status changedAt callback { callbackId callbackStatus } }
}"""
# With --filters K: the other half of the subscribers, spread over K filters that each admit
# every change (the run's campaign and one more name of their own), so every subscriber still
# gets every change but the server sees K + 1 kinds of subscriber.
FILTERED_SUBSCRIPTION = """subscription($filter: CallbackStatusChangedFilter) {
  callbackStatusChanged(filter: $filter) {
    previousStatus status changedAt callback { callbackId callbackStatus }
  }
}"""
SETUP = """mutation {
  upsertAgent(input: {agentId: "A1", name: "Ava"}) { agentId }
  upsertContact(input: {contactId: "C1", firstName: "Noah", lastName: "Kim",
                        phone: "+1 555 0100", timeZone: "America/Chicago"}) { contactId }
}"""
CAMPAIGN = '{ campaign(name: "Spring Renewals") { name } }'
# Only when the campaign is missing: upserting an existing campaign fails (as of 2026-11-29 the
# INSERT ... ON CONFLICT leaves out the NOT NULL state column when the campaign exists).
UPSERT_CAMPAIGN = """mutation {
  upsertCampaign(input: {name: "Spring Renewals", campaignType: FINITE,
                         strategy: "Sales_Strategy", maxAttempts: 2}) { name }
}"""
START_JOB = 'mutation { startJob(input: {jobId: 7, campaignName: "Spring Renewals"}) { jobId } }'
SCHEDULE = """mutation($input: ScheduleCallbackInput!) {
  scheduleCallback(input: $input) { callbackId callbackStatus }
}"""

T = TypeVar("T")


class BenchError(Exception):
    """Ends the benchmark with a message."""


# --- the server -------------------------------------------------------------------------------


def raise_open_files_limit(needed: int) -> tuple[int, int]:
    """Raise this process's soft RLIMIT_NOFILE (children inherit it); return the new limits."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return soft, hard
    if hard != resource.RLIM_INFINITY and hard < needed:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, needed))
        except (ValueError, OSError):
            raise BenchError(
                f"need {needed} open files, the hard limit is {hard}; raise it (ulimit -Hn)"
            ) from None
        return needed, needed
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    return needed, hard


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def pomreport(arguments: Sequence[str], profile: Path | None = None) -> list[str]:
    """The `pomreport` command line, run with this interpreter (no reliance on PATH), under
    cProfile (its statistics written to `profile` when the command ends) if given."""
    profiler = [] if profile is None else ["-m", "cProfile", "-o", str(profile)]
    return [sys.executable, *profiler, "-m", "service.cli", *arguments]


def server_environment(database_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "POMREPORT_EXPIRY_SWEEP_SECONDS": "0",
    }


def migrate(database_url: str) -> None:
    completed = subprocess.run(
        pomreport(["migrate"]),
        env=server_environment(database_url),
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise BenchError(f"pomreport migrate failed: {completed.stderr.strip()}")


@dataclass(frozen=True, slots=True)
class ProcessReading:
    rss_kib: int
    hwm_kib: int
    cpu_seconds: float


def read_process(pid: int) -> ProcessReading:
    """VmRSS and VmHWM from /proc/<pid>/status, user+system CPU from /proc/<pid>/stat."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    stat = Path(f"/proc/{pid}/stat").read_text()
    after_name = stat[stat.rindex(")") + 2 :].split()
    # Fields 14 and 15 (utime, stime); after_name starts at field 3.
    ticks = int(after_name[11]) + int(after_name[12])
    return ProcessReading(fields["VmRSS"], fields["VmHWM"], ticks / os.sysconf("SC_CLK_TCK"))


@dataclass(slots=True)
class Server:
    process: asyncio.subprocess.Process
    address: str
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


@contextlib.asynccontextmanager
async def serve(database_url: str, log: Path, profile: Path | None) -> AsyncIterator[Server]:
    """`pomreport serve` in a child process, until the block ends."""
    port = free_port()
    with log.open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            *pomreport(["serve", "--host", "127.0.0.1", "--port", str(port)], profile),
            env=server_environment(database_url),
            cwd=REPOSITORY,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, f"127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + 30
        async with httpx.AsyncClient(base_url=f"http://{server.address}") as client:
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/readyz")).status_code == 200:
                        break
                if process.returncode is not None:
                    raise BenchError(f"pomreport serve exited:\n{server.log_tail()}")
                if time.monotonic() > deadline:
                    raise BenchError(f"pomreport serve did not become ready:\n{server.log_tail()}")
                await asyncio.sleep(0.1)
        yield server
    finally:
        if process.returncode is None:
            # uvicorn re-raises the signal after its graceful shutdown: SIGTERM would then end
            # the process before cProfile writes; SIGINT ends as KeyboardInterrupt, which
            # `pomreport` turns into an exit status.
            process.send_signal(signal.SIGINT if profile is not None else signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()


# --- GraphQL over HTTP ----------------------------------------------------------------------


async def post(
    client: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None
) -> Any:
    response = await client.post("/graphql", json={"query": query, "variables": variables})
    body = response.json()
    if response.status_code != 200 or body.get("errors"):
        raise BenchError(f"request failed ({response.status_code}): {body}")
    return body["data"]


def schedule_variables(callback_id: str) -> dict[str, Any]:
    return {
        "input": {
            "callbackId": callback_id,
            "callbackType": "CAMPAIGN",
            "jobId": 7,
            "creatorAgentId": "A1",
            "contactId": "C1",
            # A call of its own: a callback on the same call would overwrite (a second change).
            "callId": callback_id,
            "creationTime": "2026-03-01T09:00:00+00:00",
            "scheduledStartTime": "2026-03-01T09:00:00+00:00",
            "scheduledEndTime": "2099-01-01T00:00:00Z",
        }
    }


# --- the subscribers --------------------------------------------------------------------------


@dataclass(slots=True)
class Progress:
    """Frames received by all clients; `reached` is set once `count` gets to `target`."""

    count: int = 0
    target: int = 0
    last_at: float = 0.0
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    # Subscribers that received at least one frame; `all_heard` once that is `subscribers`.
    subscribers: int = 0
    heard: int = 0
    all_heard: asyncio.Event = field(default_factory=asyncio.Event)

    def expect(self, target: int) -> None:
        self.target = target
        if self.count >= target:
            self.reached.set()
        else:
            self.reached.clear()


@dataclass(slots=True)
class Subscriber:
    connection: ClientConnection
    # Monotonic receive times and raw frames, parsed only after the run; kept apart so that
    # a million deliveries add no object the client's garbage collector must scan (a tuple
    # per frame made its full collections pause every client for up to a second).
    received_at: array.array[float] = field(default_factory=lambda: array.array("d"))
    frames: list[str | bytes] = field(default_factory=list)
    closed: bool = False
    reader: asyncio.Task[None] | None = None


async def read_frames(subscriber: Subscriber, progress: Progress) -> None:
    """The whole client side of one connection: receive, timestamp, count."""
    frames = subscriber.frames
    times = subscriber.received_at
    try:
        async for frame in subscriber.connection:
            received_at = time.monotonic()
            if not frames:
                progress.heard += 1
                if progress.heard >= progress.subscribers:
                    progress.all_heard.set()
            times.append(received_at)
            frames.append(frame)
            progress.count += 1
            progress.last_at = received_at
            if progress.count >= progress.target:
                progress.reached.set()
    except ConnectionClosed:
        pass
    subscriber.closed = True


def subscription_payload(index: int, subscribers: int, filters: int) -> dict[str, Any]:
    """What subscriber `index` subscribes to: the shared document for the first half (all
    of them without --filters), else one of the filters."""
    if filters == 0 or index < subscribers // 2:
        return {"query": SUBSCRIPTION}
    names = ["Spring Renewals", f"Other {index % filters}"]
    return {"query": FILTERED_SUBSCRIPTION, "variables": {"filter": {"campaignNames": names}}}


async def open_subscriber(
    url: str, compression: str | None, progress: Progress, payload: dict[str, Any]
) -> Subscriber:
    connection = await connect(
        url,
        subprotocols=[PROTOCOL],
        compression=compression,
        ping_interval=None,  # a busy loop must not drop connections for late pongs
        open_timeout=60,
        close_timeout=5,
        max_queue=None,
    )
    await connection.send(json.dumps({"type": "connection_init", "payload": {}}))
    ack = json.loads(await asyncio.wait_for(connection.recv(), 60))
    if ack.get("type") != "connection_ack":
        raise BenchError(f"expected connection_ack, got {ack}")
    await connection.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
    subscriber = Subscriber(connection)
    subscriber.reader = asyncio.create_task(read_frames(subscriber, progress))
    return subscriber


async def bounded_gather(coroutines: Sequence[Coroutine[Any, Any, T]], limit: int) -> list[T]:
    semaphore = asyncio.Semaphore(limit)

    async def one(coroutine: Coroutine[Any, Any, T]) -> T:
        async with semaphore:
            return await coroutine

    return list(await asyncio.gather(*(one(c) for c in coroutines)))


async def wait_until_quiet(progress: Progress, quiet_seconds: float, limit_seconds: float) -> None:
    """Until no frame arrived for quiet_seconds (or limit_seconds passed)."""
    deadline = time.monotonic() + limit_seconds
    while time.monotonic() < deadline:
        if time.monotonic() - progress.last_at >= quiet_seconds:
            return
        await asyncio.sleep(0.05)


# --- results ----------------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * fraction // 1))
    return sorted_values[int(rank) - 1]


@dataclass(frozen=True, slots=True)
class Distribution:
    count: int
    median_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Distribution:
        values = sorted(s * 1000 for s in seconds)
        if not values:
            return cls(0, *(float("nan"),) * 4)
        return cls(
            len(values),
            statistics.median(values),
            percentile(values, 0.90),
            percentile(values, 0.99),
            values[-1],
        )

    def line(self) -> str:
        return (
            f"median {self.median_ms:8.1f}  p90 {self.p90_ms:8.1f}  p99 {self.p99_ms:8.1f}  "
            f"max {self.max_ms:8.1f} ms  (n={self.count:,})"
        )


@dataclass(slots=True)
class Deliveries:
    latencies: list[float] = field(default_factory=list)
    per_change: dict[int, list[float]] = field(default_factory=dict)
    duplicates: int = 0
    errors: list[str] = field(default_factory=list)
    completes: int = 0
    unexpected: int = 0
    subscribers_closed: int = 0
    subscribers_complete: int = 0


def tally(subscribers: Sequence[Subscriber], prefix: str, started: Sequence[float]) -> Deliveries:
    """Parse every recorded frame; latencies of the measured changes (by callback ID)."""
    result = Deliveries(per_change={index: [] for index in range(len(started))})
    for subscriber in subscribers:
        seen: set[int] = set()
        complete = False
        for received_at, frame in zip(subscriber.received_at, subscriber.frames, strict=True):
            message = json.loads(frame)
            kind = message.get("type")
            if kind == "complete":
                result.completes += 1
                complete = True
                continue
            if kind != "next":
                if kind not in ("ping", "pong"):
                    result.unexpected += 1
                    result.errors.append(json.dumps(message)[:300])
                continue
            payload = message.get("payload") or {}
            if payload.get("errors"):
                result.errors.append(json.dumps(payload["errors"])[:300])
                continue
            callback_id: str = payload["data"]["callbackStatusChanged"]["callback"]["callbackId"]
            if not callback_id.startswith(prefix):
                continue  # a warm-up change
            index = int(callback_id[len(prefix) :])
            if index in seen:
                result.duplicates += 1
                continue
            seen.add(index)
            latency = received_at - started[index]
            result.latencies.append(latency)
            result.per_change[index].append(latency)
        result.subscribers_closed += subscriber.closed
        result.subscribers_complete += complete
    return result


# --- the run ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Options:
    subscribers: int
    changes: int
    filters: int
    settle: bool
    compression: str | None
    connect_concurrency: int
    stall_seconds: float
    server_profile: Path | None


async def run_benchmark(database_url: str, store: str, options: Options) -> dict[str, Any]:
    run_token = uuid.uuid4().hex[:6]
    prefix = f"FO{run_token}-"
    with tempfile.TemporaryDirectory(prefix="fanout-log-") as directory:
        log = Path(directory) / "serve.log"
        async with (
            serve(database_url, log, options.server_profile) as server,
            httpx.AsyncClient(base_url=f"http://{server.address}", timeout=120) as http,
        ):
            try:
                return await measure(server, http, prefix, store, options)
            except BaseException:
                print(f"server log (tail):\n{server.log_tail()}", file=sys.stderr)
                raise


async def measure(
    server: Server, http: httpx.AsyncClient, prefix: str, store: str, options: Options
) -> dict[str, Any]:
    n, m = options.subscribers, options.changes
    load_before = os.getloadavg()[0]  # other work on the machine skews every figure
    if (await post(http, CAMPAIGN))["campaign"] is None:
        await post(http, UPSERT_CAMPAIGN)
    await post(http, SETUP)
    await post(http, START_JOB)
    for number in range(3):  # every mutation path once, with no subscriber
        await post(http, SCHEDULE, schedule_variables(f"{prefix}idle{number}"))
    await asyncio.sleep(1.0)
    before = read_process(server.pid)

    progress = Progress(subscribers=n)
    url = f"ws://{server.address}/graphql"
    connect_started = time.monotonic()
    subscribers = await bounded_gather(
        [
            open_subscriber(
                url, options.compression, progress, subscription_payload(i, n, options.filters)
            )
            for i in range(n)
        ],
        options.connect_concurrency,
    )
    connect_seconds = time.monotonic() - connect_started

    # Subscriptions start asynchronously: schedule warm-up callbacks until all have one.
    warmups = 0
    warm_deadline = time.monotonic() + 120
    while not progress.all_heard.is_set():
        if time.monotonic() > warm_deadline:
            missing = sum(1 for s in subscribers if not s.frames)
            raise BenchError(f"{missing} subscribers received no warm-up change in 120 s")
        await post(http, SCHEDULE, schedule_variables(f"WARM{prefix}{warmups}"))
        warmups += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(progress.all_heard.wait(), 5)
    await wait_until_quiet(progress, quiet_seconds=1.0, limit_seconds=60)
    await asyncio.sleep(0.5)
    with_subscribers = read_process(server.pid)
    # The clients' connections live to the end: out of the collector's sight, so that its
    # full collections (which would pause every client at once) stay short.
    gc.collect()
    gc.freeze()

    # The measured changes.
    progress.count = 0
    progress.expect(n * m)
    started: list[float] = []
    responses: list[float] = []
    settle_timeouts = 0
    cpu_client_start = time.process_time()
    server_start = read_process(server.pid)
    wall_start = time.monotonic()
    for index in range(m):
        variables = schedule_variables(f"{prefix}{index:04d}")
        if options.settle:
            progress.expect(n * index)
            try:
                await asyncio.wait_for(progress.reached.wait(), options.stall_seconds)
            except TimeoutError:
                settle_timeouts += 1
            progress.expect(n * m)
        sent_at = time.monotonic()
        started.append(sent_at)
        await post(http, SCHEDULE, variables)
        responses.append(time.monotonic() - sent_at)
    sent_seconds = time.monotonic() - wall_start
    while not progress.reached.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(progress.reached.wait(), 0.5)
        if time.monotonic() - max(progress.last_at, started[-1]) > options.stall_seconds:
            break
    wall_seconds = max(progress.last_at, started[-1]) - wall_start
    server_end = read_process(server.pid)
    cpu_client = time.process_time() - cpu_client_start
    await asyncio.sleep(0.5)
    after = read_process(server.pid)

    for subscriber in subscribers:
        if subscriber.reader is not None:
            subscriber.reader.cancel()
    await asyncio.gather(*(s.reader for s in subscribers if s.reader), return_exceptions=True)
    await bounded_gather([s.connection.close() for s in subscribers], 200)

    deliveries = tally(subscribers, prefix, started)
    firsts = [min(v) for v in deliveries.per_change.values() if v]
    lasts = [max(v) for v in deliveries.per_change.values() if v]
    spreads = [max(v) - min(v) for v in deliveries.per_change.values() if v]
    tenth = max(1, m // 10)
    per_change = [
        {
            "change": index,
            "response_ms": round(responses[index] * 1000, 1),
            "first_ms": round(min(values) * 1000, 1) if values else None,
            "last_ms": round(max(values) * 1000, 1) if values else None,
            "received": len(values),
        }
        for index, values in sorted(deliveries.per_change.items())
    ]
    rss_delta_kib = with_subscribers.rss_kib - before.rss_kib
    return {
        "store": store,
        "subscribers": n,
        "filters": options.filters,
        "changes": m,
        "settle": options.settle,
        "compression": options.compression or "none",
        "connect_seconds": round(connect_seconds, 2),
        "warmup_changes": warmups,
        "latency": Distribution.of(deliveries.latencies),
        "first_delivery": Distribution.of(firsts),
        "last_delivery": Distribution.of(lasts),
        "fanout_spread": Distribution.of(spreads),
        "mutation_response": Distribution.of(responses),
        # Does fan-out get slower as the run goes on? The first and the last tenth of changes.
        "spread_first_tenth": Distribution.of(spreads[:tenth]),
        "spread_last_tenth": Distribution.of(spreads[-tenth:]),
        "received": len(deliveries.latencies),
        "expected": n * m,
        "duplicates": deliveries.duplicates,
        "errors": len(deliveries.errors),
        "error_samples": deliveries.errors[:5],
        "completes": deliveries.completes,
        "unexpected_frames": deliveries.unexpected,
        "subscribers_closed": deliveries.subscribers_closed,
        "settle_timeouts": settle_timeouts,
        "send_seconds": round(sent_seconds, 2),
        "wall_seconds": round(wall_seconds, 2),
        "deliveries_per_second": round(len(deliveries.latencies) / wall_seconds, 0)
        if wall_seconds > 0
        else None,
        "server_cpu_seconds": round(server_end.cpu_seconds - server_start.cpu_seconds, 2),
        "client_cpu_seconds": round(cpu_client, 2),
        "rss_before_mib": round(before.rss_kib / 1024, 1),
        "rss_with_subscribers_mib": round(with_subscribers.rss_kib / 1024, 1),
        "rss_after_changes_mib": round(after.rss_kib / 1024, 1),
        "hwm_mib": round(after.hwm_kib / 1024, 1),
        "kib_per_subscriber": round(rss_delta_kib / n, 1),
        "load_average_before": round(load_before, 2),
        "per_change": per_change,
    }


def report(result: dict[str, Any]) -> None:
    print(
        f"\nsubscription fan-out: {result['store']}, {result['subscribers']:,} subscribers "
        f"({result['filters']} filters), "
        f"{result['changes']} changes, {'settled' if result['settle'] else 'back-to-back'}, "
        f"compression {result['compression']}"
    )
    print(
        f"  connect+subscribe     {result['connect_seconds']} s, "
        f"warm-up changes {result['warmup_changes']}"
    )
    for key, label in (
        ("latency", "delivery latency"),
        ("first_delivery", "first per change"),
        ("last_delivery", "last per change"),
        ("fanout_spread", "fan-out spread"),
        ("mutation_response", "mutation response"),
        ("spread_first_tenth", "spread, first 10%"),
        ("spread_last_tenth", "spread, last 10%"),
    ):
        distribution: Distribution = result[key]
        print(f"  {label:<20}  {distribution.line()}")
    print(
        f"  deliveries            {result['received']:,} of {result['expected']:,} "
        f"(duplicates {result['duplicates']}, errors {result['errors']}, "
        f"complete {result['completes']}, closed {result['subscribers_closed']})"
    )
    for sample in result["error_samples"]:
        print(f"    error: {sample}")
    print(
        f"  time                  sent in {result['send_seconds']} s, delivered in "
        f"{result['wall_seconds']} s ({result['deliveries_per_second']} deliveries/s)"
    )
    print(
        f"  CPU during changes    server {result['server_cpu_seconds']} s, "
        f"clients (this process) {result['client_cpu_seconds']} s; 1-minute load average "
        f"before the run {result['load_average_before']}"
    )
    print(
        f"  server VmRSS          before {result['rss_before_mib']} MiB, with subscribers "
        f"{result['rss_with_subscribers_mib']} MiB, after changes "
        f"{result['rss_after_changes_mib']} MiB, VmHWM {result['hwm_mib']} MiB -> "
        f"{result['kib_per_subscriber']} KiB per subscriber"
    )


# --- databases --------------------------------------------------------------------------------


async def _admin(server_url: str, statement: str) -> None:
    connection = await asyncpg.connect(server_url)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextlib.contextmanager
def fresh_postgresql(server_url: str) -> Iterator[str]:
    """A new database on the server, dropped afterwards; yields its URL."""
    name = f"pomreport_fanout_{uuid.uuid4().hex[:8]}"
    plain = make_url(server_url).set(drivername="postgresql")
    admin = plain.render_as_string(hide_password=False)
    asyncio.run(_admin(admin, f'CREATE DATABASE "{name}"'))
    try:
        yield plain.set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.contextmanager
def fresh_sqlite() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="fanout-db-") as directory:
        yield f"sqlite:///{Path(directory) / 'fanout.db'}"


def run_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument(
        "--filters",
        type=int,
        default=0,
        help="half the subscribers share one document, the other half spread over this many "
        "filters (0: all share one document)",
    )
    store = parser.add_mutually_exclusive_group()
    store.add_argument("--database-url", help="use (and migrate) this database")
    store.add_argument(
        "--postgresql-server",
        nargs="?",
        const=DEFAULT_POSTGRESQL_SERVER,
        help=f"create a fresh database on this server, drop it afterwards "
        f"(default {DEFAULT_POSTGRESQL_SERVER})",
    )
    parser.add_argument(
        "--settle",
        action="store_true",
        help="send each change only after every subscriber received the previous one",
    )
    parser.add_argument("--compression", choices=["deflate", "none"], default="deflate")
    parser.add_argument("--connect-concurrency", type=int, default=50)
    parser.add_argument("--stall-seconds", type=float, default=30.0)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--server-profile",
        type=Path,
        help="run the server under cProfile and write its statistics here (slows it down)",
    )
    arguments = parser.parse_args()
    options = Options(
        subscribers=arguments.subscribers,
        changes=arguments.changes,
        filters=arguments.filters,
        settle=arguments.settle,
        compression=None if arguments.compression == "none" else "deflate",
        connect_concurrency=arguments.connect_concurrency,
        stall_seconds=arguments.stall_seconds,
        server_profile=arguments.server_profile.resolve() if arguments.server_profile else None,
    )
    try:
        # Each side (this process, the server child, which inherits the limit) holds one
        # socket per subscriber; the limit is per process.
        raise_open_files_limit(arguments.subscribers + 1024)
        database: contextlib.AbstractContextManager[str]
        if arguments.database_url:
            database = contextlib.nullcontext(arguments.database_url)
        elif arguments.postgresql_server:
            database = fresh_postgresql(arguments.postgresql_server)
        else:
            database = fresh_sqlite()
        with database as database_url:
            store_name = "SQLite" if database_url.startswith("sqlite") else "PostgreSQL"
            migrate(database_url)
            result = run_loop(run_benchmark(database_url, store_name, options))
    except BenchError as error:
        raise SystemExit(f"subscription_fanout: {error}") from None
    report(result)
    if arguments.json:
        serialisable = {
            key: dataclasses.asdict(value) if isinstance(value, Distribution) else value
            for key, value in result.items()
        }
        arguments.json.write_text(json.dumps(serialisable, indent=2) + "\n")


if __name__ == "__main__":
    main()
