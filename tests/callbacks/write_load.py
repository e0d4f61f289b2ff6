"""Concurrent writers through the GraphQL mutations, and SQL checks of every SPEC 2.3 invariant
afterwards: tests/callbacks/test_concurrent_writers.py runs it for seconds, bench/sqlite_writers.py
for a minute.

Each writer loops until the time is up, sending one mutation at a time through the app (in
process, no network): it schedules callbacks on a few (agent, contact, call) triples that every
writer shares, so schedules overwrite each other's; records attempts (real, restricted) and
completions, postpones, expires due callbacks and excludes contacts, all on callbacks other
writers touch too. Meanwhile a watcher reads every terminal callback (its status, schedule,
latest attempt and number of attempts) again and again, and a subscriber receives every status
change. At the end the checks ask, by SQL:

- at most one ACTIVE callback per (creator agent, contact, call);
- no terminal callback changed once seen terminal (nor became ACTIVE again);
- no excluded contact has an ACTIVE callback;
- every EXPIRED and CONTACT_EXCLUDED callback has its dummy attempt, every COMPLETED one a
  real attempt by an agent;
- each callback's latest-attempt columns are its latest attempt's;
- every status change was written to the change log, and reached the subscriber, exactly
  once: a callback's creation, then at most one change out of ACTIVE, to the status it has
  (each delivered change being its log entry);
- no request was answered with an internal error (or any HTTP 5xx but 503).

A run uses names of its own (a fresh campaign, agents, contacts), so it may share a database.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import datetime as dt
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.engine import URL

from service.db.engines import create_engine
from service.events.hub import ChangeFilter, DeliveredChange
from service.settings import Settings
from tests.graphql_client import running_app

AGENTS = 3
CONTACTS_IN_PLAY = 6
CALLS = 3
# Share of each operation among a writer's mutations.
WEIGHTS = {
    "schedule": 40,
    "attempt": 12,
    "complete": 12,
    "postpone": 12,
    "expire": 8,
    "exclude": 2,
}
# How long past the deadline writers go on while some kind of mutation has not gone through.
OVERTIME_SECONDS = 30.0
# Codes a writer may be answered with: a callback another writer made terminal first, or a
# contact excluded meanwhile (CONFLICT); the write lock busy past the busy timeout.
EXPECTED_CODES = frozenset({"OK", "CONFLICT", "SERVICE_UNAVAILABLE"})

SCHEDULE = """mutation($input: ScheduleCallbackInput!) {
  scheduleCallback(input: $input) { callbackId callbackStatus } }"""
ATTEMPT = """mutation($input: RecordCallbackAttemptInput!) {
  recordCallbackAttempt(input: $input) { callbackId callbackStatus } }"""
POSTPONE = """mutation($input: PostponeCallbackInput!) {
  postponeCallback(input: $input) { callbackId callbackStatus } }"""
EXPIRE = "mutation($asOf: DateTime) { expireDueCallbacks(asOf: $asOf) { changedCount } }"
EXCLUDE = "mutation($id: String!) { excludeContact(contactId: $id) { changedCount } }"
UPSERT_CONTACT = (
    """mutation($input: ContactInput!) { upsertContact(input: $input) { contactId } }"""
)


@dataclass
class WriteLoadReport:
    """What a run did and what the checks found."""

    writers: int
    seconds: float
    # Answers by operation and code ("OK" for none).
    answers: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    # Seconds each mutation took, as its client saw it.
    latencies: list[float] = field(default_factory=list)
    # HTTP statuses of the answers.
    http_statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    # Callbacks by final status.
    statuses: collections.Counter[str] = field(default_factory=collections.Counter)
    changes_delivered: int = 0
    terminal_snapshots: int = 0
    # Each invariant check and the number of rows (or requests) breaking it: all 0 when kept.
    violations: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def mutations(self) -> int:
        """Mutations answered."""
        return sum(self.answers.values())

    @property
    def codes(self) -> collections.Counter[str]:
        """Answers by code, whatever the operation."""
        codes: collections.Counter[str] = collections.Counter()
        for (_operation, code), count in self.answers.items():
            codes[code] += count
        return codes

    @property
    def kept(self) -> bool:
        """Whether every invariant held."""
        return not any(self.violations.values())


@dataclass
class _Run:
    """The names of one run and what its writers share."""

    client: httpx.AsyncClient
    tag: str
    base: dt.datetime
    deadline: float
    report: WriteLoadReport
    # Callbacks scheduled so far, with their creation times.
    callbacks: list[tuple[str, dt.datetime]] = field(default_factory=list)
    # The contacts new callbacks go to: the oldest leaves at each exclusion, a new one joins.
    contacts: list[str] = field(default_factory=list)
    added_contacts: int = 0
    next_callback: int = 0
    job_id: int = 0

    def agent(self, n: int) -> str:
        return f"{self.tag}-A{n}"

    def contact(self, n: int) -> str:
        return f"{self.tag}-C{n:05d}"

    async def send(self, operation: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        started = time.monotonic()
        response = await self.client.post("/graphql", json={"query": query, "variables": variables})
        self.report.latencies.append(time.monotonic() - started)
        self.report.http_statuses[response.status_code] += 1
        body: dict[str, Any] = response.json()
        errors = body.get("errors") or []
        code = errors[0].get("extensions", {}).get("code", "NO_CODE") if errors else "OK"
        self.report.answers[(operation, code)] += 1
        if code not in EXPECTED_CODES:
            self.report.examples.setdefault("unexpected_answers", []).append(
                f"{operation}: {errors[0].get('message')}"
            )
        return body


async def run_write_load(
    database_url: URL,
    *,
    writers: int = 16,
    seconds: float = 3.0,
    seed: int = 1,
    settings: Settings | None = None,
) -> WriteLoadReport:
    """Run `writers` concurrent writers for `seconds` on a migrated database, then check every
    invariant. `settings` (its database URL replaced) configures the service."""
    settings = dataclasses.replace(
        settings or Settings(database_url=database_url),
        database_url=database_url,
        open_without_keys=True,
        expiry_sweep_seconds=0,
        # The test's subscriber must not be closed as too slow: it counts every change.
        subscriber_backlog=10_000_000,
    )
    report = WriteLoadReport(writers=writers, seconds=seconds)
    watcher = _TerminalWatcher(database_url)
    async with running_app(settings) as (app, client):
        run = _Run(
            client=client,
            tag=f"W{uuid.uuid4().hex[:6]}",
            base=dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=1),
            deadline=0.0,
            report=report,
        )
        campaign = await _prepare(run)
        received: list[DeliveredChange] = []
        async with app.state.events.hub.subscribe(
            ChangeFilter(campaign_names=frozenset({campaign}))
        ) as subscriber:

            async def receive() -> None:
                async for change in subscriber.changes():
                    received.append(change)

            receiving = asyncio.create_task(receive())
            watching = asyncio.create_task(watcher.watch_forever(campaign))
            run.deadline = time.monotonic() + seconds
            started = time.monotonic()
            await asyncio.gather(
                *(_write(run, random.Random(seed * 1000 + n)) for n in range(writers))
            )
            report.seconds = time.monotonic() - started
            await _until_quiet(received)
            watching.cancel()
            receiving.cancel()
            await asyncio.gather(watching, receiving, return_exceptions=True)
        report.changes_delivered = len(received)
        try:
            await watcher.look(campaign)
        finally:
            await watcher.close()
        report.terminal_snapshots = watcher.snapshots
        await _check(database_url, campaign, received, watcher, report)
    return report


async def _prepare(run: _Run) -> str:
    """The run's campaign, job, agents and first contacts; returns the campaign's name."""
    campaign = f"Load {run.tag}"
    agents = " ".join(
        f'a{n}: upsertAgent(input: {{agentId: "{run.agent(n)}", name: "Agent {n}"}}) {{ agentId }}'
        for n in range(AGENTS)
    )
    setup = f"""mutation {{
      upsertCampaign(input: {{name: "{campaign}", campaignType: INFINITE,
                             strategy: "Load", maxAttempts: 3}}) {{ name }}
      {agents}
    }}"""
    body = await run.client.post("/graphql", json={"query": setup})
    assert "errors" not in body.json(), body.json()
    job = (
        "mutation($name: String!, $at: DateTime!) "
        "{ startJob(input: {jobId: %d, campaignName: $name, startTime: $at}) { jobId } }"
    )
    run.job_id = random.Random(run.tag).randrange(1, 2**31)
    body = await run.client.post(
        "/graphql",
        json={
            "query": job % run.job_id,
            "variables": {"name": campaign, "at": (run.base - dt.timedelta(days=1)).isoformat()},
        },
    )
    assert "errors" not in body.json(), body.json()
    for _ in range(CONTACTS_IN_PLAY):
        await _add_contact(run)
    return campaign


async def _add_contact(run: _Run) -> None:
    n = run.added_contacts
    run.added_contacts += 1
    contact = {
        "contactId": run.contact(n),
        "firstName": "Load",
        "lastName": f"Contact {n}",
        "phone": f"+1 555 {n:07d}",
        "timeZone": "UTC",
    }
    for _ in range(20):  # again while the service is busy (SERVICE_UNAVAILABLE)
        if "errors" not in await run.send("add_contact", UPSERT_CONTACT, {"input": contact}):
            run.contacts.append(contact["contactId"])
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"contact {contact['contactId']} could not be added")


async def _write(run: _Run, rng: random.Random) -> None:
    """One writer: a mutation at a time, chosen by WEIGHTS, until the deadline."""
    operations: dict[str, Callable[[_Run, random.Random], Awaitable[None]]] = {
        "schedule": _schedule,
        "attempt": _attempt,
        "complete": _complete,
        "postpone": _postpone,
        "expire": _expire,
        "exclude": _exclude,
    }
    names, weights = list(WEIGHTS), list(WEIGHTS.values())
    while time.monotonic() < run.deadline or (
        # On a slow machine a few seconds may hold no exclusion (2 % of the mutations): the
        # writers go on, a little, until every kind of mutation has gone through once.
        time.monotonic() < run.deadline + OVERTIME_SECONDS
        and any(run.report.answers[(name, "OK")] == 0 for name in names)
    ):
        operation = rng.choices(names, weights)[0]
        if operation != "schedule" and operation not in ("expire", "exclude") and not run.callbacks:
            operation = "schedule"
        await operations[operation](run, rng)


async def _schedule(run: _Run, rng: random.Random) -> None:
    # Creation times over the day before the run, so some arrive after a later one of their
    # call (born OVERWRITTEN) and every attempt made now comes after its callback's creation.
    created = run.base + dt.timedelta(seconds=rng.uniform(0, 86_000))
    start = created + dt.timedelta(minutes=rng.uniform(10, 600))
    end = start + dt.timedelta(minutes=rng.uniform(10, 3_000))
    run.next_callback += 1
    callback_id = f"{run.tag}-CB{run.next_callback:07d}"
    agent = rng.randrange(AGENTS)
    is_agent_type = rng.random() < 0.3
    variables = {
        "input": {
            "callbackId": callback_id,
            "callbackType": "AGENT" if is_agent_type else "CAMPAIGN",
            "jobId": run.job_id,
            "creatorAgentId": run.agent(agent),
            "createdForAgentId": run.agent(rng.randrange(AGENTS)) if is_agent_type else None,
            "contactId": rng.choice(run.contacts),
            "callId": f"CALL-{rng.randrange(CALLS)}",
            "creationTime": created.isoformat(),
            "scheduledStartTime": start.isoformat(),
            "scheduledEndTime": end.isoformat(),
        }
    }
    body = await run.send("schedule", SCHEDULE, variables)
    if "errors" not in body:
        run.callbacks.append((callback_id, created))


def _pick(run: _Run, rng: random.Random) -> str:
    # Mostly recent callbacks, which are more often still ACTIVE.
    recent = run.callbacks[-40:]
    return rng.choice(recent if rng.random() < 0.8 else run.callbacks)[0]


async def _attempt(run: _Run, rng: random.Random) -> None:
    restricted = rng.random() < 0.5
    attempt: dict[str, Any] = {"callbackId": _pick(run, rng)}
    if restricted:
        attempt["systemCompletionCode"] = rng.choice(["RESTRICTED_DNC", "RESTRICTED_OTHER"])
    else:
        attempt.update(agentId=run.agent(rng.randrange(AGENTS)), customCompletionCode="No answer")
    await run.send("attempt", ATTEMPT, {"input": attempt})


async def _complete(run: _Run, rng: random.Random) -> None:
    attempt = {
        "callbackId": _pick(run, rng),
        "agentId": run.agent(rng.randrange(AGENTS)),
        "customCompletionCode": "Sale",
        "completed": True,
    }
    await run.send("complete", ATTEMPT, {"input": attempt})


async def _postpone(run: _Run, rng: random.Random) -> None:
    start = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=rng.uniform(-600, 600))
    end = start + dt.timedelta(minutes=rng.uniform(10, 600))
    postpone = {
        "callbackId": _pick(run, rng),
        "scheduledStartTime": start.isoformat(),
        "scheduledEndTime": end.isoformat(),
    }
    await run.send("postpone", POSTPONE, {"input": postpone})


async def _expire(run: _Run, rng: random.Random) -> None:
    as_of = run.base + dt.timedelta(seconds=rng.uniform(0, 2 * 86_400))
    await run.send("expire", EXPIRE, {"asOf": as_of.isoformat()})


async def _exclude(run: _Run, rng: random.Random) -> None:
    # A new contact joins; the oldest in play leaves it, so schedules never run out.
    await _add_contact(run)
    await run.send("exclude", EXCLUDE, {"id": run.contacts.pop(0)})


async def _until_quiet(received: list[DeliveredChange], quiet: float = 0.5) -> None:
    """Wait until no change has arrived for `quiet` seconds (30 s at most)."""
    deadline = time.monotonic() + 30
    seen = -1
    while len(received) != seen and time.monotonic() < deadline:
        seen = len(received)
        await asyncio.sleep(quiet)


_CALLBACK_ROWS = """
SELECT c.callback_id, c.status, c.scheduled_start_at, c.scheduled_end_at, c.last_attempt_at,
       c.serviced_by_agent_id, c.custom_completion_code, c.system_completion_code,
       (SELECT count(*) FROM callback_attempt a WHERE a.callback_id = c.callback_id)
FROM callback c JOIN campaign p ON p.id = c.campaign_id
WHERE p.name = :campaign
"""


class _TerminalWatcher:
    """Reads the run's callbacks again and again, remembering how it first saw each terminal
    one; any later difference (ACTIVE again included) is a terminal callback that changed."""

    def __init__(self, database_url: URL) -> None:
        self.engine = create_engine(database_url)
        self.first_seen: dict[str, tuple[Any, ...]] = {}
        # Each terminal callback that changed, once: how it was first seen, how it was then.
        self.changed: dict[str, str] = {}
        self.snapshots = 0

    async def watch_forever(self, campaign: str, every: float = 0.2) -> None:
        while True:
            await self.look(campaign)
            await asyncio.sleep(every)

    async def look(self, campaign: str) -> None:
        """One snapshot, compared with what was seen before."""
        async with self.engine.connect() as connection:
            rows = await connection.execute(text(_CALLBACK_ROWS), {"campaign": campaign})
            now = {row[0]: tuple(row[1:]) for row in rows}
        self.snapshots += 1
        for callback_id, first in self.first_seen.items():
            if now.get(callback_id) != first and callback_id not in self.changed:
                self.changed[callback_id] = f"{callback_id}: {first} then {now.get(callback_id)}"
        for callback_id, row in now.items():
            if row[0] != "ACTIVE":
                self.first_seen.setdefault(callback_id, row)

    async def close(self) -> None:
        await self.engine.dispose()


# Each check: rows that break an invariant, for the run's campaign (:campaign).
_CHECKS = {
    "more_than_one_active_per_call": """
        SELECT c.creator_agent_id || '/' || c.contact_id || '/' || c.call_id
        FROM callback c JOIN campaign p ON p.id = c.campaign_id
        WHERE p.name = :campaign AND c.status = 'ACTIVE'
        GROUP BY c.creator_agent_id, c.contact_id, c.call_id HAVING count(*) > 1""",
    "active_callback_of_excluded_contact": """
        SELECT c.callback_id FROM callback c
        JOIN campaign p ON p.id = c.campaign_id JOIN contact k ON k.contact_id = c.contact_id
        WHERE p.name = :campaign AND c.status = 'ACTIVE' AND k.excluded_at IS NOT NULL""",
    "terminal_without_its_attempt": """
        SELECT c.callback_id FROM callback c JOIN campaign p ON p.id = c.campaign_id
        WHERE p.name = :campaign AND (
          (c.status = 'EXPIRED' AND NOT EXISTS (SELECT 1 FROM callback_attempt a
             WHERE a.callback_id = c.callback_id AND a.is_dummy
               AND a.system_completion_code = 'CALLBACK_EXPIRED'))
          OR (c.status = 'CONTACT_EXCLUDED' AND NOT EXISTS (SELECT 1 FROM callback_attempt a
             WHERE a.callback_id = c.callback_id AND a.is_dummy
               AND a.system_completion_code = 'CONTACT_EXCLUDED'))
          OR (c.status = 'COMPLETED' AND NOT EXISTS (SELECT 1 FROM callback_attempt a
             WHERE a.callback_id = c.callback_id AND NOT a.is_dummy
               AND a.agent_id IS NOT NULL)))""",
    "latest_attempt_columns_not_the_latest_attempt": """
        SELECT c.callback_id FROM callback c JOIN campaign p ON p.id = c.campaign_id
        WHERE p.name = :campaign AND c.last_attempt_at IS DISTINCT FROM
          (SELECT max(a.attempted_at) FROM callback_attempt a
           WHERE a.callback_id = c.callback_id)""",
}


async def _check(
    database_url: URL,
    campaign: str,
    received: list[DeliveredChange],
    watcher: _TerminalWatcher,
    report: WriteLoadReport,
) -> None:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            for name, sql in _CHECKS.items():
                found = [
                    row[0] for row in await connection.execute(text(sql), {"campaign": campaign})
                ]
                report.violations[name] = len(found)
                if found:
                    report.examples[name] = [str(item) for item in found[:5]]
            rows = await connection.execute(
                text(
                    "SELECT c.callback_id, c.status FROM callback c"
                    " JOIN campaign p ON p.id = c.campaign_id WHERE p.name = :campaign"
                ),
                {"campaign": campaign},
            )
            final = {callback_id: status for callback_id, status in rows}
            logged = await connection.execute(
                text(
                    "SELECT s.id, s.callback_id, s.previous_status, s.status"
                    " FROM callback_status_change s"
                    " JOIN callback c ON c.callback_id = s.callback_id"
                    " JOIN campaign p ON p.id = c.campaign_id WHERE p.name = :campaign"
                ),
                {"campaign": campaign},
            )
            log = {row[0]: (row[1], row[2], row[3]) for row in logged}
    finally:
        await engine.dispose()
    report.statuses = collections.Counter(final.values())
    report.violations["terminal_callback_changed"] = len(watcher.changed)
    if watcher.changed:
        report.examples["terminal_callback_changed"] = list(watcher.changed.values())[:5]
    delivered = [
        (
            change.callback.callback_id,
            change.previous_status.value if change.previous_status else None,
            change.status.value,
        )
        for change in received
    ]
    wrong = _changes_not_exactly_once(final, delivered)
    report.violations["status_change_not_delivered_exactly_once"] = len(wrong)
    if wrong:
        report.examples["status_change_not_delivered_exactly_once"] = wrong[:5]
    wrong = _changes_not_exactly_once(final, list(log.values()))
    # Each delivered change is its log entry, and none twice.
    ids = collections.Counter(change.change_id for change in received)
    wrong += [f"change {i} delivered {n} times" for i, n in ids.items() if n > 1]
    wrong += [
        f"change {change.change_id} delivered as {item}, logged as {log.get(change.change_id)}"
        for change, item in zip(received, delivered, strict=True)
        if log.get(change.change_id) != item
    ]
    report.violations["status_change_not_logged_exactly_once"] = len(wrong)
    if wrong:
        report.examples["status_change_not_logged_exactly_once"] = wrong[:5]
    report.violations["internal_errors"] = sum(
        count for (_operation, code), count in report.answers.items() if code not in EXPECTED_CODES
    ) + sum(
        count for status, count in report.http_statuses.items() if status >= 500 and status != 503
    )


def _changes_not_exactly_once(
    final: dict[str, str], changes: list[tuple[str, str | None, str]]
) -> list[str]:
    """Callbacks whose changes (callback, previous status, status) are not exactly: their
    creation, then (when created ACTIVE and no longer so) one change from ACTIVE to the status
    they have."""
    by_callback: dict[str, list[tuple[str | None, str]]] = collections.defaultdict(list)
    for callback_id, previous, status in changes:
        by_callback[callback_id].append((previous, status))
    wrong = []
    for callback_id, status in final.items():
        made = by_callback.pop(callback_id, [])
        created = next((new for previous, new in made if previous is None), None)
        if created == "ACTIVE" and status != "ACTIVE":
            expected = [(None, "ACTIVE"), ("ACTIVE", status)]
        else:
            expected = [(None, status)]
        # Two transactions' changes may be published in either order; each counts once.
        if sorted(made, key=str) != sorted(expected, key=str):
            wrong.append(f"{callback_id} ({status}): {made}")
    wrong.extend(f"{callback_id} (no such callback): {c}" for callback_id, c in by_callback.items())
    return wrong
