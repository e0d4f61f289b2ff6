"""Soak: reports, connections, mutations and subscribers mixed against one instance on
PostgreSQL for minutes, with what must hold checked at the end.

Usage:
    .venv/bin/python bench/soak.py [--minutes 10] [--concurrency 64] [--subscribers 500]
        [--database-url URL] [--admin-url URL] [--seed-callbacks 100000] [--json FILE]

The database (default postgresql://postgres@127.0.0.1:5432/soakbench) is created, migrated and
seeded (`pomreport seed --callbacks N --seed 1`, as of the current hour) when it is missing or
empty; `pomreport serve` runs on it in a child process (report_latency.serving_child: open mode
on loopback, so no key and no rate limit; no expiry sweeps, the mix expires callbacks itself).

Then, all in this process:
1. setup through GraphQL: a campaign, 8 agents, 50 contacts and a running job of the soak's own;
2. the subscribers connect over graphql-transport-ws and subscribe to every status change,
   selecting its changeId (one document for all: the server shares one execution per change);
3. `--concurrency` workers send requests back to back for `--minutes`: the report (7 days, one
   agent, 100 rows with every field), connections (callbacks with campaign, agent and contact;
   contacts with their callbacks), and mutations (schedule on one of 400 calls, so some
   overwrite; attempts that complete or are restricted; postpones; now and then an expiry);
4. every 10 s the server's VmRSS; per minute the requests, p50 and p99 in ms and the errors.

At the end: every status change the log holds since the start reached every subscriber exactly
once (a bitmap per subscriber), and the SPEC's invariants hold by SQL: at most one ACTIVE
callback per (creator agent, contact, call), and each logged change follows the one before it
for its callback (so no terminal callback ever changed). Printed, and written as JSON with
--json: the per-minute table, RSS growth after the first minute, error counts by code and HTTP
status, deliveries. Exits 1 if any check fails, a 5xx or a masked error was seen, or RSS grew
10 % or more after the warm-up minute.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import datetime as dt
import json
import os
import random
import resource
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import websockets

# The report benchmark's helpers, from the file beside this one.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from report_latency import (
    DEFAULT_ADMIN_URL,
    REPORT_QUERY,
    asyncpg_dsn,
    ensure_seeded,
    serving_child,
)

from service.settings import parse_database_url

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/soakbench"
JOB_ID = 990_001
AGENTS = [f"SOAK-A{n}" for n in range(8)]
CONTACTS = [f"SOAK-C{n:02d}" for n in range(50)]
CALLS = 400
RSS_EVERY_SECONDS = 10.0

SETUP = """mutation($agentId: String!, $name: String!) {
  upsertAgent(input: {agentId: $agentId, name: $name}) { agentId }
}"""
CAMPAIGN = """mutation {
  upsertCampaign(input: {name: "Soak", campaignType: INFINITE, strategy: "Soak_Strategy",
                         maxAttempts: 3}) { name }
}"""
CONTACT = """mutation($contactId: String!) {
  upsertContact(input: {contactId: $contactId, firstName: "Soak", lastName: $contactId,
                        phone: "+1 555 0199", timeZone: "Europe/Berlin"}) { contactId }
}"""
START_JOB = """mutation($jobId: Int!) {
  startJob(input: {jobId: $jobId, campaignName: "Soak"}) { jobId }
}"""
SCHEDULE = """mutation($input: ScheduleCallbackInput!) {
  scheduleCallback(input: $input) { callbackId callbackStatus }
}"""
ATTEMPT = """mutation($input: RecordCallbackAttemptInput!) {
  recordCallbackAttempt(input: $input) { callbackId callbackStatus }
}"""
POSTPONE = """mutation($input: PostponeCallbackInput!) {
  postponeCallback(input: $input) { callbackId scheduledEndTime }
}"""
EXPIRE = "mutation($asOf: DateTime) { expireDueCallbacks(asOf: $asOf) { changedCount } }"
CALLBACKS = """query($status: CallbackStatus) {
  callbacks(first: 50, filter: {callbackStatus: {eq: $status}},
            orderBy: [{field: CREATION_TIME, direction: DESC}]) {
    totalCount
    edges { node { callbackId callbackStatus creationTime
      campaign { name } creatorAgent { agentId name } contact { contactId timeZone } } }
  }
}"""
CONTACTS_QUERY = """{
  contacts(first: 20, filter: {contactId: {startsWith: "SOAK-"}}) {
    edges { node { contactId callbacks(first: 5) { totalCount edges { node { callbackId } } } } }
  }
}"""
SUBSCRIPTION = "subscription { callbackStatusChanged { changeId status } }"
# Codes a client's own request may legitimately get in the mix: completing or postponing a
# callback another request made terminal first, scheduling on a job that is not running.
EXPECTED_CODES = {"CONFLICT", "NOT_FOUND"}


@dataclass
class Minute:
    """What one minute of the load saw."""

    latencies: list[float] = field(default_factory=list)
    by_kind: collections.Counter[str] = field(default_factory=collections.Counter)
    codes: collections.Counter[str] = field(default_factory=collections.Counter)
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)


@dataclass
class Soak:
    """The run's shared state."""

    started: float
    # Names this run's callbacks apart from earlier runs' on the same database.
    run: str = field(default_factory=lambda: os.urandom(4).hex())
    minutes: list[Minute] = field(default_factory=list)
    rss_kib: list[tuple[float, int]] = field(default_factory=list)
    scheduled: list[str] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def minute(self) -> Minute:
        index = int((time.monotonic() - self.started) // 60)
        while len(self.minutes) <= index:
            self.minutes.append(Minute())
        return self.minutes[index]


class Subscriber:
    """One WebSocket subscriber; marks each changeId it receives in a bitmap from `base`."""

    def __init__(self, address: str, base: int) -> None:
        self.address = address
        self.base = base
        self.seen = bytearray(1 << 16)
        self.received = 0
        self.duplicates = 0
        self.errors: list[str] = []
        self.ready = asyncio.Event()

    def mark(self, change_id: int) -> None:
        offset = change_id - self.base
        if offset < 0:
            return
        byte, bit = divmod(offset, 8)
        if byte >= len(self.seen):
            self.seen.extend(bytes(byte + 1 - len(self.seen) + 4096))
        if self.seen[byte] & (1 << bit):
            self.duplicates += 1
        self.seen[byte] |= 1 << bit
        self.received += 1

    def has(self, change_id: int) -> bool:
        byte, bit = divmod(change_id - self.base, 8)
        return byte < len(self.seen) and bool(self.seen[byte] & (1 << bit))

    async def listen(self) -> None:
        async with websockets.connect(
            f"ws://{self.address}/graphql",
            subprotocols=[websockets.Subprotocol("graphql-transport-ws")],
            max_queue=None,
        ) as connection:
            await connection.send(json.dumps({"type": "connection_init", "payload": {}}))
            assert json.loads(await connection.recv())["type"] == "connection_ack"
            await connection.send(
                json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIPTION}})
            )
            self.ready.set()
            async for message in connection:
                event = orjson.loads(message)
                if event["type"] != "next" or "errors" in event["payload"]:
                    self.errors.append(str(message)[:300])
                    continue
                self.mark(int(event["payload"]["data"]["callbackStatusChanged"]["changeId"]))


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _request(rng: random.Random, soak: Soak, agent_id: str) -> tuple[str, dict[str, Any]]:
    """The next request of the mix: (kind, body)."""
    now = dt.datetime.now(dt.UTC)
    roll = rng.random()
    if roll < 0.30:
        variables = {"agentId": agent_id, "first": 100}
        return "report", {"query": REPORT_QUERY, "variables": variables}
    if roll < 0.50:
        status = rng.choice([None, "ACTIVE", "COMPLETED", "OVERWRITTEN"])
        return "callbacks", {"query": CALLBACKS, "variables": {"status": status}}
    if roll < 0.60:
        return "contacts", {"query": CONTACTS_QUERY}
    if roll < 0.82 or not soak.scheduled:
        callback_id = f"SOAK-{soak.run}-{rng.getrandbits(48):012x}"
        soak.scheduled.append(callback_id)
        variables = {
            "input": {
                "callbackId": callback_id,
                "callbackType": rng.choice(["CAMPAIGN", "STANDARD"]),
                "jobId": JOB_ID,
                "creatorAgentId": rng.choice(AGENTS),
                "contactId": rng.choice(CONTACTS),
                "callId": f"SOAK-CALL-{rng.randrange(CALLS)}",
                "scheduledStartTime": _iso(now),
                # Some end within the run, for the expiries.
                "scheduledEndTime": _iso(now + dt.timedelta(seconds=rng.choice([30, 3600]))),
            }
        }
        return "schedule", {"query": SCHEDULE, "variables": variables}
    callback_id = rng.choice(soak.scheduled[-2000:])
    if roll < 0.93:
        attempt: dict[str, Any] = {"callbackId": callback_id, "agentId": rng.choice(AGENTS)}
        if rng.random() < 0.6:
            attempt["completed"] = True
        else:
            attempt.update(dummy=True, systemCompletionCode="RESTRICTED_DNC")
        return "attempt", {"query": ATTEMPT, "variables": {"input": attempt}}
    if roll < 0.99:
        postpone = {
            "callbackId": callback_id,
            "scheduledStartTime": _iso(now + dt.timedelta(minutes=5)),
            "scheduledEndTime": _iso(now + dt.timedelta(hours=2)),
        }
        return "postpone", {"query": POSTPONE, "variables": {"input": postpone}}
    return "expire", {"query": EXPIRE, "variables": {"asOf": _iso(now)}}


async def _worker(number: int, base_url: str, soak: Soak) -> None:
    rng = random.Random(number)
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        while not soak.stop.is_set():
            kind, body = _request(rng, soak, rng.choice(AGENTS))
            started = time.perf_counter()
            try:
                response = await client.post("/graphql", json=body)
            except httpx.TransportError as error:
                soak.minute().codes[f"transport: {type(error).__name__}"] += 1
                continue
            elapsed = time.perf_counter() - started
            minute = soak.minute()
            minute.latencies.append(elapsed)
            minute.by_kind[kind] += 1
            minute.statuses[response.status_code] += 1
            for problem in response.json().get("errors") or []:
                minute.codes[(problem.get("extensions") or {}).get("code", "none")] += 1


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def _sample_rss(pid: int, soak: Soak) -> None:
    while not soak.stop.is_set():
        soak.rss_kib.append((time.monotonic() - soak.started, _rss_kib(pid)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(soak.stop.wait(), RSS_EVERY_SECONDS)


async def _setup(client: httpx.AsyncClient) -> None:
    requests: list[tuple[str, dict[str, Any]]] = [(CAMPAIGN, {})]
    requests += [(SETUP, {"agentId": agent, "name": agent}) for agent in AGENTS]
    requests += [(CONTACT, {"contactId": contact}) for contact in CONTACTS]
    for query, variables in requests:
        body = (await client.post("/graphql", json={"query": query, "variables": variables})).json()
        assert "errors" not in body, body
    started = await client.post(
        "/graphql", json={"query": START_JOB, "variables": {"jobId": JOB_ID}}
    )
    assert "errors" not in started.json(), started.text


async def _invariants(dsn: str, base: int) -> dict[str, int]:
    connection = await asyncpg.connect(dsn)
    try:
        second_active = await connection.fetchval(
            """SELECT count(*) FROM (SELECT 1 FROM callback WHERE status = 'ACTIVE'
               GROUP BY creator_agent_id, contact_id, call_id HAVING count(*) > 1) t"""
        )
        broken_chain = await connection.fetchval(
            """SELECT count(*) FROM (
                 SELECT previous_status, lag(status) OVER (PARTITION BY callback_id ORDER BY id)
                        AS before, row_number() OVER (PARTITION BY callback_id ORDER BY id) AS n
                 FROM callback_status_change
                 WHERE callback_id IN (SELECT callback_id FROM callback_status_change
                                       WHERE id > $1 AND callback_id LIKE 'SOAK-%')) t
               WHERE (n > 1 AND previous_status IS DISTINCT FROM before)
                  OR (previous_status IS NOT NULL AND previous_status <> 'ACTIVE')""",
            base,
        )
        row_differs = await connection.fetchval(
            """SELECT count(*) FROM callback c JOIN (
                 SELECT DISTINCT ON (callback_id) callback_id, status FROM callback_status_change
                 WHERE callback_id LIKE 'SOAK-%' ORDER BY callback_id, id DESC) last
               USING (callback_id) WHERE c.status <> last.status"""
        )
        return {
            "calls with a second ACTIVE callback": int(second_active),
            "changes not following the one before (a terminal callback changed)": int(broken_chain),
            "callbacks whose status differs from their last logged change": int(row_differs),
        }
    finally:
        await connection.close()


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


async def run(arguments: argparse.Namespace) -> dict[str, Any]:
    raw_url: str = arguments.database_url
    dsn = asyncpg_dsn(parse_database_url(raw_url))
    with serving_child(raw_url) as (port, server):
        base_url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
            await _setup(client)
        connection = await asyncpg.connect(dsn)
        base = int(
            await connection.fetchval("SELECT coalesce(max(id), 0) FROM callback_status_change")
        )
        await connection.close()
        subscribers = [
            Subscriber(f"127.0.0.1:{port}", base + 1) for _ in range(arguments.subscribers)
        ]
        listening = [asyncio.create_task(s.listen()) for s in subscribers]
        await asyncio.wait_for(asyncio.gather(*(s.ready.wait() for s in subscribers)), 120)
        await asyncio.sleep(2)  # subscriptions start asynchronously on the server
        soak = Soak(started=time.monotonic())
        cpu_before = (_cpu_seconds(server.pid), _own_cpu_seconds())
        rss = asyncio.create_task(_sample_rss(server.pid, soak))
        workers = [
            asyncio.create_task(_worker(n, base_url, soak)) for n in range(arguments.concurrency)
        ]
        await asyncio.sleep(arguments.minutes * 60)
        soak.stop.set()
        await asyncio.gather(*workers, rss)
        cpu = (
            _cpu_seconds(server.pid) - cpu_before[0],
            _own_cpu_seconds() - cpu_before[1],
        )
        connection = await asyncpg.connect(dsn)
        logged = [
            int(row["id"])
            for row in await connection.fetch(
                "SELECT id FROM callback_status_change WHERE id > $1 ORDER BY id", base
            )
        ]
        await connection.close()
        for _ in range(120):  # at most a minute for the last deliveries
            if all(s.received >= len(logged) for s in subscribers):
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(2)  # a duplicate would arrive meanwhile
        for task in listening:
            task.cancel()
        await asyncio.gather(*listening, return_exceptions=True)
    missing = sum(1 for s in subscribers for change_id in logged if not s.has(change_id))
    invariants = await _invariants(dsn, base)
    table = []
    for number, minute in enumerate(soak.minutes[: arguments.minutes], start=1):
        samples = [kib for at, kib in soak.rss_kib if number - 1 <= at / 60 < number]
        table.append(
            {
                "minute": number,
                "requests": len(minute.latencies),
                "per_second": round(len(minute.latencies) / 60, 1),
                "p50_ms": round(1000 * statistics.median(minute.latencies), 1)
                if minute.latencies
                else None,
                "p99_ms": round(1000 * _percentile(minute.latencies, 0.99), 1),
                "mix": dict(minute.by_kind),
                "error_codes": dict(minute.codes),
                "http_statuses": dict(minute.statuses),
                "rss_mib": round(max(samples) / 1024, 1) if samples else None,
            }
        )
    after_warmup = [kib for at, kib in soak.rss_kib if at >= 60]
    growth = (
        (after_warmup[-1] - after_warmup[0]) / after_warmup[0] if len(after_warmup) > 1 else 0.0
    )
    half = [kib for at, kib in soak.rss_kib if at >= 30 * arguments.minutes]
    second_half = (half[-1] - half[0]) / half[0] if len(half) > 1 else 0.0
    codes = sum((m.codes for m in soak.minutes), collections.Counter[str]())
    statuses = sum((m.statuses for m in soak.minutes), collections.Counter[int]())
    failures = {
        "5xx responses": sum(n for status, n in statuses.items() if status >= 500),
        "masked or unexpected error codes": sum(
            n for code, n in codes.items() if code not in EXPECTED_CODES
        ),
        "deliveries missing": missing,
        "deliveries twice": sum(s.duplicates for s in subscribers),
        "subscriber errors": sum(len(s.errors) for s in subscribers),
        "RSS growth after the first minute >= 10 %": int(growth >= 0.10),
        **invariants,
    }
    return {
        "minutes": table,
        "changes": len(logged),
        "subscribers": len(subscribers),
        "deliveries": sum(s.received for s in subscribers),
        "rss_growth_after_warmup_percent": round(100 * growth, 1),
        "rss_growth_second_half_percent": round(100 * second_half, 1),
        "cpu_seconds": {"server": round(cpu[0], 1), "load_generator": round(cpu[1], 1)},
        "error_codes": dict(codes),
        "http_statuses": {str(k): v for k, v in statuses.items()},
        "failures": failures,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--subscribers", type=int, default=500)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--admin-url", default=DEFAULT_ADMIN_URL)
    parser.add_argument("--seed-callbacks", type=int, default=100_000)
    parser.add_argument("--json", type=Path)
    arguments = parser.parse_args()
    ensure_seeded(arguments.database_url, arguments.admin_url, True, arguments.seed_callbacks)
    result = asyncio.run(run(arguments))
    print(f"{'min':>3} {'req':>6} {'req/s':>6} {'p50 ms':>7} {'p99 ms':>7} {'RSS MiB':>8}  errors")
    for row in result["minutes"]:
        print(
            f"{row['minute']:>3} {row['requests']:>6} {row['per_second']:>6} "
            f"{row['p50_ms']:>7} {row['p99_ms']:>7} {row['rss_mib']:>8}  {row['error_codes']}"
        )
    print(
        f"changes {result['changes']}, subscribers {result['subscribers']}, deliveries "
        f"{result['deliveries']}; RSS growth after minute 1: "
        f"{result['rss_growth_after_warmup_percent']} %, over the second half: "
        f"{result['rss_growth_second_half_percent']} %; CPU seconds: {result['cpu_seconds']}"
    )
    for check, count in result["failures"].items():
        print(f"  {'ok  ' if count == 0 else 'FAIL'} {check}: {count}")
    if arguments.json:
        arguments.json.write_text(json.dumps(result, indent=2))
    sys.exit(1 if any(result["failures"].values()) else 0)


if __name__ == "__main__":
    main()
