"""POM's callback rules through the mutations, on both stores."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tests.graphql_client import GraphQLClient

T0 = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)

CALLBACK_FIELDS = """
  callbackId callbackType callbackStatus createdFor creatorAgentId createdForAgentId
  scheduledStartTime scheduledEndTime servicedByAgentId interactionAttemptTime
  customCompletionCode systemCompletionCode
  attempts { attemptTime agentId customCompletionCode systemCompletionCode dummy }
"""

SCHEDULE = (
    "mutation($input: ScheduleCallbackInput!) { scheduleCallback(input: $input) { "
    + CALLBACK_FIELDS
    + " } }"
)
ATTEMPT = (
    "mutation($input: RecordCallbackAttemptInput!) { recordCallbackAttempt(input: $input) { "
    + CALLBACK_FIELDS
    + " } }"
)
POSTPONE = (
    "mutation($input: PostponeCallbackInput!) { postponeCallback(input: $input) { "
    + CALLBACK_FIELDS
    + " } }"
)
CALLBACK = "query($id: String!) { callback(callbackId: $id) { " + CALLBACK_FIELDS + " } }"


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat()


def _setup(api: GraphQLClient, *, max_attempts: int = 2) -> None:
    api.data(
        """mutation($max: Int!) {
          upsertCampaign(input: {name: "Spring Renewals", campaignType: FINITE,
                                 strategy: "Sales_Strategy", maxAttempts: $max}) { name }
          other: upsertCampaign(input: {name: "Win Back", campaignType: INFINITE,
                                        strategy: "Retention", maxAttempts: 3}) { name }
          a1: upsertAgent(input: {agentId: "A1", name: "Ava"}) { agentId }
          a2: upsertAgent(input: {agentId: "A2", name: "Ben"}) { agentId }
          c1: upsertContact(input: {contactId: "C1", firstName: "Noah", lastName: "Kim",
                                    phone: "+1 555 0100", timeZone: "America/Chicago"}) {
            contactId
          }
          c2: upsertContact(input: {contactId: "C2", firstName: "Mia", lastName: "Rossi",
                                    phone: "+1 555 0101", timeZone: "Europe/Rome"}) { contactId }
        }""",
        {"max": max_attempts},
    )
    api.data(
        'mutation { j1: startJob(input: {jobId: 7, campaignName: "Spring Renewals"}) { jobId }'
        ' j2: startJob(input: {jobId: 8, campaignName: "Win Back"}) { jobId } }'
    )


def _schedule(api: GraphQLClient, callback_id: str, **changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "callbackId": callback_id,
        "callbackType": "CAMPAIGN",
        "jobId": 7,
        "creatorAgentId": "A1",
        "contactId": "C1",
        "callId": "CALL-1",
        "creationTime": _iso(T0),
        "scheduledStartTime": _iso(T0 + dt.timedelta(hours=2)),
        "scheduledEndTime": _iso(T0 + dt.timedelta(hours=6)),
    }
    payload.update(changes)
    return api.execute(SCHEDULE, {"input": payload})


def _callback(api: GraphQLClient, callback_id: str) -> dict[str, Any]:
    callback: dict[str, Any] = api.data(CALLBACK, {"id": callback_id})["callback"]
    return callback


def _error_code(body: dict[str, Any]) -> str:
    assert body.get("errors"), body
    code: str = body["errors"][0]["extensions"]["code"]
    return code


def test_schedule_callback_overwrites_earlier_active_on_the_same_call(
    empty_graphql: GraphQLClient,
) -> None:
    _setup(empty_graphql)
    first = _schedule(empty_graphql, "CB1")["data"]["scheduleCallback"]
    assert (first["callbackStatus"], first["createdFor"]) == ("ACTIVE", "Spring Renewals")
    _schedule(empty_graphql, "CB2", callId="CALL-2")
    _schedule(empty_graphql, "CB3", creationTime=_iso(T0 + dt.timedelta(minutes=1)))
    statuses = {
        cid: _callback(empty_graphql, cid)["callbackStatus"] for cid in ("CB1", "CB2", "CB3")
    }
    assert statuses == {"CB1": "OVERWRITTEN", "CB2": "ACTIVE", "CB3": "ACTIVE"}
    # Fed out of order: an earlier callback of the call arrives late; it is the overwritten one.
    late = _schedule(empty_graphql, "CB0", creationTime=_iso(T0 - dt.timedelta(minutes=5)))
    assert late["data"]["scheduleCallback"]["callbackStatus"] == "OVERWRITTEN"
    assert _callback(empty_graphql, "CB3")["callbackStatus"] == "ACTIVE"


def test_schedule_callback_generates_an_id_and_names_the_agent_it_is_for(
    empty_graphql: GraphQLClient,
) -> None:
    _setup(empty_graphql)
    body = empty_graphql.execute(
        SCHEDULE,
        {
            "input": {
                "callbackType": "AGENT",
                "jobId": 7,
                "creatorAgentId": "A1",
                "createdForAgentId": "A2",
                "contactId": "C1",
                "callId": "CALL-9",
                # Fed in after the fact: its end has passed, so its creation time is given.
                "creationTime": "2026-03-02T09:30:00",
                "scheduledStartTime": "2026-03-02T10:00:00",
                "scheduledEndTime": "2026-03-02T12:00:00",
            }
        },
    )
    callback = body["data"]["scheduleCallback"]
    assert callback["callbackId"].startswith("CB-")
    assert callback["createdFor"] == "A2"
    # A time without an offset is UTC.
    assert callback["scheduledStartTime"] == "2026-03-02T10:00:00+00:00"


@pytest.mark.parametrize(
    ("changes", "code", "message"),
    [
        ({"scheduledEndTime": _iso(T0)}, "BAD_USER_INPUT", "must not be before"),
        ({"createdForAgentId": "A2"}, "BAD_USER_INPUT", "only for AGENT and STRICT_AGENT"),
        ({"callbackType": "STRICT_AGENT"}, "BAD_USER_INPUT", "createdForAgentId is required"),
        ({"jobId": 99}, "NOT_FOUND", "job 99 does not exist"),
        ({"contactId": "C404"}, "NOT_FOUND", "contact 'C404' does not exist"),
        ({"creatorAgentId": "A404"}, "NOT_FOUND", "agent 'A404' does not exist"),
        ({"callbackType": "CAMPAIGN", "callbackId": "CB1"}, "CONFLICT", "already exists"),
    ],
)
def test_schedule_callback_refuses_inconsistent_input(
    empty_graphql: GraphQLClient, changes: dict[str, Any], code: str, message: str
) -> None:
    _setup(empty_graphql)
    _schedule(empty_graphql, "CB1", callId="CALL-0")
    body = _schedule(empty_graphql, "CBX", **changes)
    assert _error_code(body) == code
    assert message in body["errors"][0]["message"]


def _from_now(hours: float) -> str:
    return _iso(dt.datetime.now(dt.UTC) + dt.timedelta(hours=hours))


@pytest.mark.parametrize(
    ("times", "message"),
    [
        pytest.param(
            {"creationTime": None, "scheduledStartTime": _from_now(-3)},
            "not after now",
            id="created-now-end-passed",
        ),
        pytest.param(
            {"creationTime": _iso(T0 + dt.timedelta(hours=7))},
            "must be after creationTime",
            id="replayed-end-before-creation",
        ),
        pytest.param(
            {"creationTime": _iso(T0 + dt.timedelta(hours=6))},
            "must be after creationTime",
            id="replayed-end-at-creation",
        ),
    ],
)
def test_schedule_callback_refuses_a_callback_born_expired(
    empty_graphql: GraphQLClient, times: dict[str, Any], message: str
) -> None:
    _setup(empty_graphql)
    # Scheduled end: T0 + 6 h (or an hour ago), long past either way.
    changes = {"scheduledEndTime": _from_now(-1)} if times["creationTime"] is None else {}
    body = _schedule(empty_graphql, "CB1", **times, **changes)
    assert _error_code(body) == "BAD_USER_INPUT"
    assert message in body["errors"][0]["message"]
    assert _callback(empty_graphql, "CB1") is None


def test_schedule_callback_takes_a_future_end_or_a_past_one_fed_in_after_the_fact(
    empty_graphql: GraphQLClient,
) -> None:
    _setup(empty_graphql)
    live = _schedule(
        empty_graphql,
        "CB1",
        creationTime=None,
        scheduledStartTime=_from_now(1),
        scheduledEndTime=_from_now(3),
    )
    assert live["data"]["scheduleCallback"]["callbackStatus"] == "ACTIVE"
    # Replayed history: created at T0, ended at T0 + 6 h, months ago; the sweep expires it.
    replayed = _schedule(empty_graphql, "CB2", callId="CALL-2")
    assert replayed["data"]["scheduleCallback"]["callbackStatus"] == "ACTIVE"


JOBS = """query($state: JobStateFilter) {
  jobs(first: 1, filter: {state: $state, campaign: {state: {eq: RUNNING}}}) {
    edges { node { jobId startTime endTime state } }
  }
  contacts(first: 1, filter: {excluded: {eq: false}}) { edges { node { contactId } } }
  agents(first: 1) { edges { node { agentId } } }
}"""


def _job_and_schedule(graphql: GraphQLClient, *, completed: bool) -> tuple[dict[str, Any], Any]:
    """A job of a running campaign (COMPLETED or alive), and a way to schedule onto it."""
    state = {"eq": "COMPLETED"} if completed else {"ne": "COMPLETED"}
    found = graphql.data(JOBS, {"state": state})
    (job,) = [edge["node"] for edge in found["jobs"]["edges"]]
    contact_id = found["contacts"]["edges"][0]["node"]["contactId"]
    agent_id = found["agents"]["edges"][0]["node"]["agentId"]

    def schedule(callback_id: str, creation_time: str | None) -> dict[str, Any]:
        payload = {
            "callbackId": callback_id,
            "callbackType": "CAMPAIGN",
            "jobId": job["jobId"],
            "creatorAgentId": agent_id,
            "contactId": contact_id,
            "callId": f"CALL-{callback_id}",
            "creationTime": creation_time,
            "scheduledStartTime": _from_now(1),
            "scheduledEndTime": _from_now(3),
        }
        return graphql.execute(SCHEDULE, {"input": payload})

    return job, schedule


def test_schedule_callback_refuses_a_job_completed_before_the_callback_was_created(
    graphql: GraphQLClient,
) -> None:
    job, schedule = _job_and_schedule(graphql, completed=True)
    start = dt.datetime.fromisoformat(job["startTime"])
    end = dt.datetime.fromisoformat(job["endTime"])
    now = schedule("CB-NOW", None)
    assert _error_code(now) == "CONFLICT"
    assert f"job {job['jobId']} is COMPLETED" in now["errors"][0]["message"]
    after_end = schedule("CB-AFTER", _iso(end + dt.timedelta(minutes=1)))
    assert _error_code(after_end) == "CONFLICT"
    assert _callback(graphql, "CB-NOW") is None
    assert _callback(graphql, "CB-AFTER") is None
    # Created while the job still ran, fed in after it completed: history, accepted.
    during = schedule("CB-DURING", _iso(start + (end - start) / 2))
    assert during["data"]["scheduleCallback"]["callbackStatus"] == "ACTIVE"


def test_schedule_callback_takes_a_job_that_is_still_alive(graphql: GraphQLClient) -> None:
    job, schedule = _job_and_schedule(graphql, completed=False)
    assert job["state"] in ("ACTIVE", "CALLBACK", "PAUSED")
    assert schedule("CB-LIVE", None)["data"]["scheduleCallback"]["callbackStatus"] == "ACTIVE"


def test_record_attempt_completes_and_keeps_the_report_columns(
    empty_graphql: GraphQLClient,
) -> None:
    _setup(empty_graphql)
    _schedule(empty_graphql, "CB1")
    empty_graphql.data(
        ATTEMPT,
        {
            "input": {
                "callbackId": "CB1",
                "attemptTime": _iso(T0 + dt.timedelta(hours=2)),
                "agentId": "A1",
                "customCompletionCode": "No Answer",
            }
        },
    )
    done = empty_graphql.data(
        ATTEMPT,
        {
            "input": {
                "callbackId": "CB1",
                "attemptTime": _iso(T0 + dt.timedelta(hours=3)),
                "agentId": "A2",
                "customCompletionCode": "Sale",
                "completed": True,
            }
        },
    )["recordCallbackAttempt"]
    assert done["callbackStatus"] == "COMPLETED"
    assert (done["servicedByAgentId"], done["customCompletionCode"]) == ("A2", "Sale")
    assert done["interactionAttemptTime"] == _iso(T0 + dt.timedelta(hours=3))
    assert [a["customCompletionCode"] for a in done["attempts"]] == ["No Answer", "Sale"]
    # A terminal callback never changes.
    again = empty_graphql.execute(ATTEMPT, {"input": {"callbackId": "CB1", "agentId": "A1"}})
    assert _error_code(again) == "CONFLICT"
    postponed = empty_graphql.execute(
        POSTPONE,
        {
            "input": {
                "callbackId": "CB1",
                "scheduledStartTime": _iso(T0),
                "scheduledEndTime": _iso(T0),
            }
        },
    )
    assert _error_code(postponed) == "CONFLICT"


@pytest.mark.parametrize(
    ("attempt", "code"),
    [
        ({"callbackId": "CB404"}, "NOT_FOUND"),
        ({"callbackId": "CB1", "attemptTime": _iso(T0 - dt.timedelta(hours=1))}, "BAD_USER_INPUT"),
        ({"callbackId": "CB1", "completed": True}, "BAD_USER_INPUT"),
        ({"callbackId": "CB1", "systemCompletionCode": "CALLBACK_EXPIRED"}, "BAD_USER_INPUT"),
        (
            {"callbackId": "CB1", "systemCompletionCode": "RESTRICTED_DNC", "dummy": False},
            "BAD_USER_INPUT",
        ),
        ({"callbackId": "CB1", "agentId": "A404"}, "NOT_FOUND"),
    ],
)
def test_record_attempt_refuses_inconsistent_input(
    empty_graphql: GraphQLClient, attempt: dict[str, Any], code: str
) -> None:
    _setup(empty_graphql)
    _schedule(empty_graphql, "CB1")
    assert _error_code(empty_graphql.execute(ATTEMPT, {"input": attempt})) == code
    assert _callback(empty_graphql, "CB1")["attempts"] == []


@pytest.mark.parametrize("code", ["RESTRICTED_DNC", "RESTRICTED_OTHER"])
def test_restricted_attempt_is_a_dummy_and_the_callback_stays_active(
    empty_graphql: GraphQLClient, code: str
) -> None:
    _setup(empty_graphql)
    _schedule(empty_graphql, "CB1")
    callback = empty_graphql.data(
        ATTEMPT,
        {
            "input": {
                "callbackId": "CB1",
                "attemptTime": _iso(T0 + dt.timedelta(hours=2)),
                "systemCompletionCode": code,
            }
        },
    )["recordCallbackAttempt"]
    assert callback["callbackStatus"] == "ACTIVE"
    assert callback["systemCompletionCode"] == code
    assert callback["attempts"] == [
        {
            "attemptTime": _iso(T0 + dt.timedelta(hours=2)),
            "agentId": None,
            "customCompletionCode": None,
            "systemCompletionCode": code,
            "dummy": True,
        }
    ]


def test_strict_agent_callback_goes_to_others_only_after_max_attempts(
    empty_graphql: GraphQLClient,
) -> None:
    _setup(empty_graphql, max_attempts=2)
    _schedule(empty_graphql, "CB1", callbackType="STRICT_AGENT", createdForAgentId="A1")

    def attempt(agent: str, hours: int) -> dict[str, Any]:
        return empty_graphql.execute(
            ATTEMPT,
            {
                "input": {
                    "callbackId": "CB1",
                    "agentId": agent,
                    "customCompletionCode": "No Answer",
                    "attemptTime": _iso(T0 + dt.timedelta(hours=hours)),
                }
            },
        )

    refused = attempt("A2", 2)
    assert _error_code(refused) == "CONFLICT"
    assert "until 2 attempts to that agent (0 so far)" in refused["errors"][0]["message"]
    assert "errors" not in attempt("A1", 2)
    assert _error_code(attempt("A2", 3)) == "CONFLICT"
    assert "errors" not in attempt("A1", 3)
    assert "errors" not in attempt("A2", 4)


def test_postpone_moves_the_schedule_with_a_dummy_attempt(empty_graphql: GraphQLClient) -> None:
    _setup(empty_graphql)
    _schedule(empty_graphql, "CB1")
    start, end = T0 + dt.timedelta(days=1), T0 + dt.timedelta(days=1, hours=4)
    callback = empty_graphql.data(
        POSTPONE,
        {
            "input": {
                "callbackId": "CB1",
                "scheduledStartTime": _iso(start),
                "scheduledEndTime": _iso(end),
            }
        },
    )["postponeCallback"]
    assert callback["callbackStatus"] == "ACTIVE"
    assert (callback["scheduledStartTime"], callback["scheduledEndTime"]) == (
        _iso(start),
        _iso(end),
    )
    assert [(a["systemCompletionCode"], a["dummy"]) for a in callback["attempts"]] == [
        ("CALLBACK_POSTPONED", True)
    ]
    bad = empty_graphql.execute(
        POSTPONE,
        {
            "input": {
                "callbackId": "CB1",
                "scheduledStartTime": _iso(end),
                "scheduledEndTime": _iso(start),
            }
        },
    )
    assert _error_code(bad) == "BAD_USER_INPUT"


def test_expire_due_callbacks_records_callback_expired_at_the_scheduled_end(
    empty_graphql: GraphQLClient,
) -> None:
    _setup(empty_graphql)
    _schedule(empty_graphql, "CB1")
    _schedule(
        empty_graphql, "CB2", callId="CALL-2", scheduledEndTime=_iso(T0 + dt.timedelta(days=3))
    )
    expire = "mutation($asOf: DateTime) { expireDueCallbacks(asOf: $asOf) { changedCount } }"
    as_of = _iso(T0 + dt.timedelta(hours=6))
    assert empty_graphql.data(expire, {"asOf": as_of})["expireDueCallbacks"]["changedCount"] == 1
    assert empty_graphql.data(expire, {"asOf": as_of})["expireDueCallbacks"]["changedCount"] == 0
    expired = _callback(empty_graphql, "CB1")
    assert expired["callbackStatus"] == "EXPIRED"
    assert expired["attempts"] == [
        {
            "attemptTime": _iso(T0 + dt.timedelta(hours=6)),
            "agentId": None,
            "customCompletionCode": None,
            "systemCompletionCode": "CALLBACK_EXPIRED",
            "dummy": True,
        }
    ]
    assert expired["systemCompletionCode"] == "CALLBACK_EXPIRED"
    assert _callback(empty_graphql, "CB2")["callbackStatus"] == "ACTIVE"


def test_terminate_campaign_ends_all_its_active_callbacks_at_once(
    empty_graphql: GraphQLClient,
) -> None:
    _setup(empty_graphql)
    for number in range(3):
        _schedule(empty_graphql, f"CB{number}", callId=f"CALL-{number}")
    _schedule(empty_graphql, "CB-OTHER", jobId=8, callId="CALL-X")
    empty_graphql.data(
        ATTEMPT,
        {
            "input": {
                "callbackId": "CB0",
                "agentId": "A1",
                "completed": True,
                "attemptTime": _iso(T0 + dt.timedelta(hours=2)),
            }
        },
    )
    terminate = 'mutation { terminateCampaign(name: "Spring Renewals") { changedCount } }'
    assert empty_graphql.data(terminate)["terminateCampaign"]["changedCount"] == 2
    statuses = [
        _callback(empty_graphql, cid)["callbackStatus"] for cid in ("CB0", "CB1", "CB2", "CB-OTHER")
    ]
    assert statuses == ["COMPLETED", "CAMPAIGN_TERMINATED", "CAMPAIGN_TERMINATED", "ACTIVE"]
    assert _error_code(empty_graphql.execute(terminate)) == "CONFLICT"
    assert _error_code(_schedule(empty_graphql, "CB9", callId="CALL-9")) == "CONFLICT"
    missing = empty_graphql.execute('mutation { terminateCampaign(name: "Nope") { changedCount } }')
    assert _error_code(missing) == "NOT_FOUND"
    state = empty_graphql.data('{ campaign(name: "Spring Renewals") { state endTime } }')
    assert state["campaign"]["state"] == "TERMINATED"


def test_exclude_contact_ends_its_active_callbacks_with_dummy_attempts(
    empty_graphql: GraphQLClient,
) -> None:
    _setup(empty_graphql)
    _schedule(empty_graphql, "CB1")
    _schedule(empty_graphql, "CB2", contactId="C2")
    exclude = 'mutation { excludeContact(contactId: "C1") { changedCount } }'
    assert empty_graphql.data(exclude)["excludeContact"]["changedCount"] == 1
    assert empty_graphql.data(exclude)["excludeContact"]["changedCount"] == 0
    excluded = _callback(empty_graphql, "CB1")
    assert excluded["callbackStatus"] == "CONTACT_EXCLUDED"
    assert [(a["systemCompletionCode"], a["dummy"]) for a in excluded["attempts"]] == [
        ("CONTACT_EXCLUDED", True)
    ]
    assert excluded["systemCompletionCode"] == "CONTACT_EXCLUDED"
    assert _callback(empty_graphql, "CB2")["callbackStatus"] == "ACTIVE"
    assert _error_code(_schedule(empty_graphql, "CB3", callId="CALL-3")) == "CONFLICT"
    unknown = empty_graphql.execute(
        'mutation { excludeContact(contactId: "C404") { changedCount } }'
    )
    assert _error_code(unknown) == "NOT_FOUND"


def test_expiry_keeps_a_later_real_attempt_as_the_latest(empty_graphql: GraphQLClient) -> None:
    _setup(empty_graphql)
    _schedule(empty_graphql, "CB1")  # scheduled end: T0 + 6 h
    late_call = _iso(T0 + dt.timedelta(hours=7))
    empty_graphql.data(
        ATTEMPT,
        {
            "input": {
                "callbackId": "CB1",
                "attemptTime": late_call,
                "agentId": "A1",
                "customCompletionCode": "No Answer",
            }
        },
    )
    expire = "mutation($asOf: DateTime) { expireDueCallbacks(asOf: $asOf) { changedCount } }"
    empty_graphql.data(expire, {"asOf": _iso(T0 + dt.timedelta(hours=8))})
    callback = _callback(empty_graphql, "CB1")
    assert callback["callbackStatus"] == "EXPIRED"
    assert (callback["interactionAttemptTime"], callback["servicedByAgentId"]) == (late_call, "A1")
    assert callback["customCompletionCode"] == "No Answer"
    assert [a["systemCompletionCode"] for a in callback["attempts"]] == ["CALLBACK_EXPIRED", None]


def test_terminating_a_campaign_whose_job_starts_later_ends_the_job_at_its_start(
    empty_graphql: GraphQLClient,
) -> None:
    _setup(empty_graphql)
    empty_graphql.data(
        'mutation { startJob(input: {jobId: 9, campaignName: "Spring Renewals",'
        ' startTime: "2099-01-01T00:00:00Z"}) { jobId } }'
    )
    empty_graphql.data('mutation { terminateCampaign(name: "Spring Renewals") { changedCount } }')
    job = empty_graphql.data("{ job(jobId: 9) { state endTime } }")["job"]
    assert job == {"state": "COMPLETED", "endTime": "2099-01-01T00:00:00+00:00"}


def test_upsert_campaign_updates_an_existing_one_but_not_its_state(
    empty_graphql: GraphQLClient,
) -> None:
    _setup(empty_graphql)
    empty_graphql.data('mutation { terminateCampaign(name: "Spring Renewals") { changedCount } }')
    updated = empty_graphql.data(
        'mutation { upsertCampaign(input: {name: "Spring Renewals", campaignType: INFINITE,'
        ' strategy: "Retention_Strategy", maxAttempts: 4}) {'
        " displayName maxAttempts state } }"
    )["upsertCampaign"]
    assert updated == {
        "displayName": "[Infinite][Retention_Strategy] Spring Renewals",
        "maxAttempts": 4,
        "state": "TERMINATED",
    }
