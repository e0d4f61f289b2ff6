"""Deterministic, realistic demo data: campaigns, jobs, agents, contacts, callbacks and attempts.

Rows come out as plain tuples in table column order, in chunks, so that a bulk loader can
stream a million callbacks without holding them. The same seed and `as_of` give the same rows.

Statuses follow SPEC 2.3 as of `as_of`: a callback is simulated from its creation to its natural
outcome (completed by an agent, or expired at its scheduled end); an earlier contact exclusion or
campaign end interrupts it, an outcome still in the future leaves it ACTIVE, and a few callbacks
are overwritten by a later one scheduled on the same call.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from service.db.models.callback import CallbackStatus, CallbackType, SystemCompletionCode
from service.db.models.campaign import CampaignState, CampaignType
from service.db.models.job import JobState

# Column order of each table's tuples; the bulk loaders insert by these names.
CAMPAIGN_COLUMNS = (
    "id",
    "name",
    "campaign_type",
    "strategy_name",
    "max_attempts",
    "state",
    "ended_at",
)
JOB_COLUMNS = ("job_id", "campaign_id", "started_at", "ended_at", "state")
AGENT_COLUMNS = ("agent_id", "name")
CONTACT_COLUMNS = (
    "contact_id",
    "first_name",
    "last_name",
    "phone_number",
    "alternate_phone_number",
    "email",
    "time_zone",
    "excluded_at",
)
CALLBACK_COLUMNS = (
    "callback_id",
    "callback_type",
    "campaign_id",
    "job_id",
    "creator_agent_id",
    "created_for_agent_id",
    "contact_id",
    "call_id",
    "created_at",
    "scheduled_start_at",
    "scheduled_end_at",
    "status",
    "serviced_by_agent_id",
    "last_attempt_at",
    "custom_completion_code",
    "system_completion_code",
)
ATTEMPT_COLUMNS = (
    "id",
    "callback_id",
    "attempted_at",
    "agent_id",
    "custom_completion_code",
    "system_completion_code",
    "is_dummy",
)

CampaignRow = tuple[int, str, str, str, int, str, dt.datetime | None]
JobRow = tuple[int, int, dt.datetime, dt.datetime | None, str]
AgentRow = tuple[str, str]
ContactRow = tuple[str, str, str, str, str | None, str | None, str, dt.datetime | None]
CallbackRow = tuple[
    str,
    str,
    int,
    int,
    str,
    str | None,
    str,
    str,
    dt.datetime,
    dt.datetime,
    dt.datetime,
    str,
    str | None,
    dt.datetime | None,
    str | None,
    str | None,
]
AttemptRow = tuple[int, str, dt.datetime, str | None, str | None, str | None, bool]

HISTORY = dt.timedelta(days=90)
HISTORY_SECONDS = HISTORY.total_seconds()

_CAMPAIGN_NAMES = (
    "Spring Renewals",
    "Card Activation",
    "Loan Reminders",
    "Customer Survey",
    "Win Back",
    "Premium Upgrade",
    "Payment Collections",
    "Appointment Confirmations",
    "Broadband Retention",
    "Insurance Quotes",
    "Energy Switch",
    "Travel Offers",
    "Donor Thanks",
    "Service Recovery",
    "Fraud Alerts",
    "Welcome Calls",
    "Contract Expiry",
    "Home Security Leads",
    "Mobile Upsell",
    "Warranty Extension",
    "Late Payment Follow-up",
    "Event Invitations",
    "Subscription Renewals",
    "Health Check Reminders",
)
_STRATEGIES = (
    "Sales_Strategy",
    "Collections_Strategy",
    "Survey_Strategy",
    "Retention_Strategy",
    "Reminder_Strategy",
    "Preview_Strategy",
)
_FIRST_NAMES = tuple(
    [
        "Ava",
        "James",
        "Mia",
        "Noah",
        "Emma",
        "Liam",
        "Sofia",
        "Lucas",
        "Chloe",
        "Ethan",
        "Nora",
        "Mateo",
        "Hana",
        "Omar",
        "Lea",
        "Jonas",
        "Aisha",
        "Diego",
        "Ines",
        "Kenji",
        "Priya",
        "Tomas",
        "Greta",
        "Felix",
        "Amara",
        "Ivan",
        "Lucia",
        "Hugo",
        "Zara",
        "Malik",
        "Freya",
        "Arjun",
        "Elena",
    ]
)
_LAST_NAMES = tuple(
    [
        "Smith",
        "Garcia",
        "Muller",
        "Rossi",
        "Novak",
        "Kim",
        "Patel",
        "Silva",
        "Johnson",
        "Brown",
        "Schmidt",
        "Dubois",
        "Jensen",
        "Kowalski",
        "Nguyen",
        "Tanaka",
        "Okafor",
        "Haddad",
        "Larsen",
        "Costa",
        "Fischer",
        "Moreau",
        "Singh",
        "Ivanova",
        "Lopez",
        "Becker",
        "Ahmed",
        "Walsh",
    ]
)
_TIME_ZONES = (
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Madrid",
    "Asia/Kolkata",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Africa/Johannesburg",
)
_FAILED_CALL_CODES = ("No Answer", "Busy", "Answering Machine", "Wrong Party", "Call Dropped")
_SUCCESS_CODES = (
    "Sale",
    "Resolved",
    "Promise To Pay",
    "Not Interested",
    "Appointment Set",
    "Info Sent",
)
_CALLBACK_TYPES = (
    CallbackType.STANDARD.value,
    CallbackType.CAMPAIGN.value,
    CallbackType.AGENT.value,
    CallbackType.STRICT_AGENT.value,
)
_CALLBACK_TYPE_CUMULATIVE_WEIGHTS = (0.40, 0.65, 0.85)
_AGENT_TYPES = (CallbackType.AGENT.value, CallbackType.STRICT_AGENT.value)
_STRICT_AGENT = CallbackType.STRICT_AGENT.value
# No failed tries before the outcome 45% of the time, one 30%, two 17%, three 8%.
_FAILED_TRIES_CUMULATIVE_WEIGHTS = (0.45, 0.75, 0.92)
_ACTIVE = CallbackStatus.ACTIVE.value
_COMPLETED = CallbackStatus.COMPLETED.value
_EXPIRED_STATUS = CallbackStatus.EXPIRED.value
_OVERWRITTEN = CallbackStatus.OVERWRITTEN.value
_CAMPAIGN_TERMINATED = CallbackStatus.CAMPAIGN_TERMINATED.value
_CONTACT_EXCLUDED_STATUS = CallbackStatus.CONTACT_EXCLUDED.value
_NEVER = (float("inf"), _ACTIVE)
_POSTPONED = SystemCompletionCode.CALLBACK_POSTPONED.value
_RESTRICTED_DNC = SystemCompletionCode.RESTRICTED_DNC.value
_RESTRICTED_OTHER = SystemCompletionCode.RESTRICTED_OTHER.value
_EXPIRED = SystemCompletionCode.CALLBACK_EXPIRED.value
_EXCLUDED = SystemCompletionCode.CONTACT_EXCLUDED.value


@dataclass(frozen=True, slots=True)
class SeedPlan:
    """What to generate: how many callbacks, from which seed, with statuses as of when."""

    callbacks: int
    seed: int = 1
    as_of: dt.datetime = field(default_factory=lambda: default_as_of(dt.datetime.now(dt.UTC)))

    @property
    def agent_count(self) -> int:
        """Hundreds of agents, more for bigger loads."""
        return min(800, max(100, self.callbacks // 1000))

    @property
    def contact_count(self) -> int:
        """About four callbacks per contact."""
        return max(200, self.callbacks // 4)


def default_as_of(now: dt.datetime) -> dt.datetime:
    """Round the current time down to the hour, so runs within the same hour give equal rows."""
    return now.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


@dataclass(frozen=True, slots=True)
class _Campaign:
    id: int
    max_attempts: int
    started_at: float
    ended_at: float | None
    job_ids: list[int]
    job_starts: list[float]


@dataclass(slots=True)
class CallbackChunk:
    """A slice of the callbacks with their attempts, ready to insert."""

    callbacks: list[CallbackRow]
    attempts: list[AttemptRow]


class DemoData:
    """Generates one plan's rows; reference tables first, then callbacks in chunks."""

    def __init__(self, plan: SeedPlan) -> None:
        self.plan = plan
        self._random = random.Random(plan.seed)
        self._campaigns: list[_Campaign] = []
        self._campaign_cumulative_weights: list[float] = []
        self._weight_total = 0.0
        self._as_of = plan.as_of.timestamp()
        self._contacts_generated = False
        self._agent_ids = [f"A{1001 + n}" for n in range(plan.agent_count)]
        self._contact_ids = [f"C{n + 1:08d}" for n in range(plan.contact_count)]
        self._contact_excluded_at: dict[int, float] = {}
        self._attempt_ids = itertools.count(1)

    # Reference data -------------------------------------------------------------------------

    def campaign_and_job_rows(self) -> tuple[list[CampaignRow], list[JobRow]]:
        """Generate campaigns of both types and states, each with its consecutive jobs."""
        rng, as_of = self._random, self.plan.as_of
        campaigns: list[CampaignRow] = []
        jobs: list[JobRow] = []
        weights: list[float] = []
        job_id = 1001
        for index, name in enumerate(_CAMPAIGN_NAMES):
            campaign_id = index + 1
            started_at = as_of - HISTORY - dt.timedelta(days=rng.uniform(1, 20))
            # One campaign in five has ended, some weeks before now.
            state = CampaignState.RUNNING
            ended_at: dt.datetime | None = None
            if index % 5 == 3:
                state = CampaignState.TERMINATED if index % 2 else CampaignState.FINISHED
                ended_at = _instant(self._as_of - rng.uniform(3, 60) * 86400)
            max_attempts = rng.randint(2, 5)
            campaigns.append(
                (
                    campaign_id,
                    name,
                    (CampaignType.FINITE if index % 3 else CampaignType.INFINITE).value,
                    _STRATEGIES[index % len(_STRATEGIES)],
                    max_attempts,
                    state.value,
                    ended_at,
                )
            )
            campaign_end = ended_at or as_of
            job_count = rng.randint(4, 12)
            span = (campaign_end - started_at) / job_count
            job_ids, job_starts = [], []
            for number in range(job_count):
                job_start = started_at + span * number
                is_last = number == job_count - 1
                job_state = JobState.COMPLETED
                job_end: dt.datetime | None = job_start + span
                if is_last and ended_at is None:
                    job_state = rng.choice((JobState.ACTIVE, JobState.CALLBACK, JobState.PAUSED))
                    job_end = None
                jobs.append((job_id, campaign_id, job_start, job_end, job_state.value))
                job_ids.append(job_id)
                job_starts.append(job_start.timestamp())
                job_id += 1
            self._campaigns.append(
                _Campaign(
                    campaign_id,
                    max_attempts,
                    started_at.timestamp(),
                    ended_at.timestamp() if ended_at else None,
                    job_ids,
                    job_starts,
                )
            )
            weights.append(rng.uniform(0.3, 3.0))
        self._campaign_cumulative_weights = list(itertools.accumulate(weights))
        self._weight_total = self._campaign_cumulative_weights[-1]
        return campaigns, jobs

    def agent_rows(self) -> list[AgentRow]:
        """Generate the agents."""
        rng = self._random
        return [
            (agent_id, f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}")
            for agent_id in self._agent_ids
        ]

    def contact_rows(self) -> Iterator[ContactRow]:
        """Generate the contacts, about one in fifty excluded at some point in the history."""
        rng = self._random
        for index, contact_id in enumerate(self._contact_ids):
            first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
            excluded_at = None
            if rng.random() < 0.02:
                # Rows and the simulation share one float instant, so they agree to the µs.
                excluded_seconds = self._as_of - rng.uniform(0, HISTORY_SECONDS)
                self._contact_excluded_at[index] = excluded_seconds
                excluded_at = _instant(excluded_seconds)
            alternate = f"+1 555 {rng.randrange(10**7):07d}" if rng.random() < 0.3 else None
            email = f"{first}.{last}{index}@example.com".lower() if rng.random() < 0.7 else None
            yield (
                contact_id,
                first,
                last,
                f"+1 555 {rng.randrange(10**7):07d}",
                alternate,
                email,
                rng.choice(_TIME_ZONES),
                excluded_at,
            )
        self._contacts_generated = True

    # Callbacks ------------------------------------------------------------------------------
    # Times are float seconds since the epoch here, the cheap form for a million callbacks;
    # rows get aware datetimes.

    def callback_chunks(self, chunk_size: int = 20_000) -> Iterator[CallbackChunk]:
        """Generate the callbacks and their attempts; call after the reference rows."""
        if not (self._campaigns and self._contacts_generated):
            raise RuntimeError("generate campaigns, jobs and contacts before callbacks")
        chunk = CallbackChunk([], [])
        produced = 0
        while produced < self.plan.callbacks:
            # A callback overwritten on the same call comes out together with its successor.
            produced += self._add_callback(chunk, produced, self.plan.callbacks - produced)
            if len(chunk.callbacks) >= chunk_size:
                yield chunk
                chunk = CallbackChunk([], [])
        if chunk.callbacks:
            yield chunk

    def _add_callback(self, chunk: CallbackChunk, number: int, remaining: int) -> int:
        random_fraction, as_of = self._random.random, self._as_of
        campaign = self._campaigns[
            bisect.bisect(self._campaign_cumulative_weights, random_fraction() * self._weight_total)
        ]
        window_start = max(campaign.started_at, as_of - HISTORY_SECONDS)
        window_end = campaign.ended_at or as_of
        created_at = window_start + (window_end - window_start) * random_fraction()
        contact_index = self._pick_contact(created_at)
        creator = self._pick_agent()
        callback_type = _CALLBACK_TYPES[
            bisect.bisect(_CALLBACK_TYPE_CUMULATIVE_WEIGHTS, random_fraction())
        ]
        created_for = None
        if callback_type in _AGENT_TYPES:
            created_for = creator if random_fraction() < 0.75 else self._pick_agent()
        draft = _CallbackDraft(
            campaign=campaign,
            contact_index=contact_index,
            creator=creator,
            callback_type=callback_type,
            created_for=created_for,
            call_id=f"CALL{number + 1:09d}",
            interrupted=self._interruption(campaign, contact_index),
        )

        # Now and then the agent schedules again on the same call, a little later: the first
        # callback becomes OVERWRITTEN, provided nothing else ended it in between.
        overwritten_at = created_at + 5 + 175 * random_fraction()
        if (
            remaining >= 2
            and random_fraction() < 0.04
            and overwritten_at < min(window_end, draft.interrupted[0])
        ):
            start, end = self._schedule(created_at)
            chunk.callbacks.append(
                self._callback_row(number, draft, created_at, start, end, _OVERWRITTEN, None)
            )
            self._add_simulated_callback(chunk, number + 1, draft, overwritten_at)
            return 2
        self._add_simulated_callback(chunk, number, draft, created_at)
        return 1

    def _add_simulated_callback(
        self, chunk: CallbackChunk, number: int, draft: _CallbackDraft, created_at: float
    ) -> None:
        random_fraction, as_of = self._random.random, self._as_of
        callback_id = f"CB{number + 1:09d}"
        attempts: list[AttemptRow] = []
        interrupted_at, interrupted_status = draft.interrupted
        postponed_at = created_at + 60 + 3540 * random_fraction()
        if random_fraction() < 0.04 and postponed_at < interrupted_at:
            # Postponed before it matured: the dummy attempt, then the moved schedule.
            attempts.append(self._attempt(callback_id, postponed_at, None, None, _POSTPONED))
            start, end = self._schedule(postponed_at)
        else:
            start, end = self._schedule(created_at)

        completes = random_fraction() < 0.7
        outcome_at = start + (end - start) * (0.05 + 0.85 * random_fraction()) if completes else end
        failed_tries = bisect.bisect(_FAILED_TRIES_CUMULATIVE_WEIGHTS, random_fraction())
        try_times = sorted(
            start + (outcome_at - start) * random_fraction() for _ in range(failed_tries)
        )
        restricted = random_fraction() < 0.04
        agents_for_tries = self._servicing_agents(draft, failed_tries + 1)

        status = _COMPLETED if completes else _EXPIRED_STATUS
        cutoff = outcome_at
        if interrupted_at <= outcome_at:
            cutoff, status = interrupted_at, interrupted_status
        if cutoff > as_of:
            cutoff, status = as_of, _ACTIVE

        for index, tried_at in enumerate(try_times):
            if tried_at >= cutoff:
                break
            if restricted and index == 0:
                code = _RESTRICTED_DNC if random_fraction() < 0.6 else _RESTRICTED_OTHER
                attempts.append(self._attempt(callback_id, tried_at, None, None, code))
            else:
                failure = _FAILED_CALL_CODES[int(random_fraction() * len(_FAILED_CALL_CODES))]
                agent = agents_for_tries[index]
                attempts.append(self._attempt(callback_id, tried_at, agent, failure, None))
        if status is _COMPLETED:
            code = _SUCCESS_CODES[int(random_fraction() * len(_SUCCESS_CODES))]
            agent = agents_for_tries[failed_tries]
            attempts.append(self._attempt(callback_id, outcome_at, agent, code, None))
        elif status is _EXPIRED_STATUS:
            attempts.append(self._attempt(callback_id, end, None, None, _EXPIRED))
        elif status is _CONTACT_EXCLUDED_STATUS:
            attempts.append(self._attempt(callback_id, cutoff, None, None, _EXCLUDED))

        latest = attempts[-1] if attempts else None
        chunk.callbacks.append(
            self._callback_row(number, draft, created_at, start, end, status, latest)
        )
        chunk.attempts.extend(attempts)

    def _servicing_agents(self, draft: _CallbackDraft, tries: int) -> list[str]:
        """Who handles each try: the assigned agent first, for strict agent up to max attempts."""
        assigned = draft.created_for
        if assigned is None:
            return [self._pick_agent() for _ in range(tries)]
        if draft.callback_type is _STRICT_AGENT:
            limit = draft.campaign.max_attempts
            return [assigned if n < limit else self._pick_agent() for n in range(tries)]
        return [assigned if self._random.random() < 0.85 else self._pick_agent()] * tries

    def _interruption(self, campaign: _Campaign, contact_index: int) -> tuple[float, str]:
        """The earliest event that ends this campaign's ACTIVE callbacks for this contact."""
        interrupted = _NEVER
        excluded_at = self._contact_excluded_at.get(contact_index)
        if excluded_at is not None:
            interrupted = (excluded_at, _CONTACT_EXCLUDED_STATUS)
        if campaign.ended_at is not None and campaign.ended_at < interrupted[0]:
            interrupted = (campaign.ended_at, _CAMPAIGN_TERMINATED)
        return interrupted

    def _pick_contact(self, created_at: float) -> int:
        """Pick a contact that was not excluded yet when the callback was created."""
        random_fraction, count = self._random.random, len(self._contact_ids)
        while True:
            index = int(random_fraction() * count)
            excluded_at = self._contact_excluded_at.get(index)
            if excluded_at is None or excluded_at > created_at:
                return index

    def _pick_agent(self) -> str:
        return self._agent_ids[int(self._random.random() * len(self._agent_ids))]

    def _schedule(self, from_time: float) -> tuple[float, float]:
        random_fraction = self._random.random
        start = from_time + 600 + (3 * 86400 - 600) * random_fraction()
        return start, start + 3600 + (2 * 86400 - 3600) * random_fraction()

    def _attempt(
        self,
        callback_id: str,
        attempted_at: float,
        agent_id: str | None,
        custom_code: str | None,
        system_code: str | None,
    ) -> AttemptRow:
        # Attempts the system records itself (system code set) are dummies: nobody dialled.
        return (
            next(self._attempt_ids),
            callback_id,
            _instant(attempted_at),
            agent_id,
            custom_code,
            system_code,
            system_code is not None,
        )

    def _callback_row(
        self,
        number: int,
        draft: _CallbackDraft,
        created_at: float,
        start: float,
        end: float,
        status: str,
        latest: AttemptRow | None,
    ) -> CallbackRow:
        campaign = draft.campaign
        job_index = bisect.bisect_right(campaign.job_starts, created_at) - 1
        return (
            f"CB{number + 1:09d}",
            draft.callback_type,
            campaign.id,
            campaign.job_ids[max(job_index, 0)],
            draft.creator,
            draft.created_for,
            self._contact_ids[draft.contact_index],
            draft.call_id,
            _instant(created_at),
            _instant(start),
            _instant(end),
            status,
            latest[3] if latest else None,
            latest[2] if latest else None,
            latest[4] if latest else None,
            latest[5] if latest else None,
        )


@dataclass(frozen=True, slots=True)
class _CallbackDraft:
    """What a callback and its successor on the same call share."""

    campaign: _Campaign
    contact_index: int
    creator: str
    callback_type: str
    created_for: str | None
    call_id: str
    # When and how the campaign's end or the contact's exclusion ends it, if ever.
    interrupted: tuple[float, str]


def _instant(epoch_seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch_seconds, dt.UTC)
