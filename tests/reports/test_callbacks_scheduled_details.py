from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.engine import URL

from service.db.engines import create_engine, create_session_maker
from service.db.models import Callback, Campaign
from tests.graphql_client import SEED_AS_OF, GraphQLClient

REPORT = """
query Report($timePeriod: TimePeriodInput, $filters: CallbacksScheduledDetailsFilters,
             $first: Int, $after: String) {
  callbacksScheduledDetails(timePeriod: $timePeriod, filters: $filters) {
    timePeriod { from to timeZone label }
    queryTime
    filters { name value }
    totalRecords
    rows(first: $first, after: $after) {
      edges { node { callbackId } }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""


def _all_callbacks(url: URL) -> tuple[list[Callback], dict[int, str]]:
    async def load() -> tuple[list[Callback], dict[int, str]]:
        engine = create_engine(url)
        try:
            async with create_session_maker(engine)() as session:
                callbacks = list(await session.scalars(select(Callback)))
                names = {c.id: c.name for c in await session.scalars(select(Campaign))}
        finally:
            await engine.dispose()
        return callbacks, names

    return asyncio.run(load())


def _report_pages(
    graphql: GraphQLClient, variables: dict[str, Any], size: int
) -> tuple[dict[str, Any], list[str]]:
    rows: list[str] = []
    cursor = None
    while True:
        report = graphql.data(REPORT, {**variables, "first": size, "after": cursor})[
            "callbacksScheduledDetails"
        ]
        rows += [edge["node"]["callbackId"] for edge in report["rows"]["edges"]]
        if not report["rows"]["pageInfo"]["hasNextPage"]:
            return report, rows
        cursor = report["rows"]["pageInfo"]["endCursor"]


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat()


BETWEEN = {"from": _iso(SEED_AS_OF - dt.timedelta(days=20)), "to": _iso(SEED_AS_OF)}

CASES: list[tuple[dict[str, Any] | None, dict[str, Any] | None]] = [
    ({"preset": "ALL"}, None),
    (BETWEEN, None),
    (BETWEEN, {"agentId": "A1003"}),
    (
        {"preset": "ALL"},
        {"callbackStatuses": ["ACTIVE", "OVERWRITTEN"], "callbackTypes": ["AGENT"]},
    ),
    ({"lastDays": 99}, {"campaignNames": ["Spring Renewals", "Win Back"]}),
    ({"preset": "ALL"}, {"servicedByAgentId": "A1001"}),
    (BETWEEN, {"jobIds": list(range(1001, 1200, 2))}),
    ({"preset": "ALL", "timeZone": "America/New_York"}, {"contactId": "C00000007"}),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_report_rows_and_total_equal_an_independent_filter(
    graphql: GraphQLClient, seeded_database_url: URL, case: int
) -> None:
    time_period, filters = CASES[case]
    report, rows = _report_pages(graphql, {"timePeriod": time_period, "filters": filters}, 89)
    period = report["timePeriod"]
    start = dt.datetime.fromisoformat(period["from"]) if period["from"] else None
    end = dt.datetime.fromisoformat(period["to"]) if period["to"] else None
    callbacks, campaign_names = _all_callbacks(seeded_database_url)
    wanted = filters or {}

    def selected(callback: Callback) -> bool:
        return (
            (start is None or callback.created_at >= start)
            and (end is None or callback.created_at < end)
            and wanted.get("agentId", callback.creator_agent_id) == callback.creator_agent_id
            and wanted.get("contactId", callback.contact_id) == callback.contact_id
            and (
                "servicedByAgentId" not in wanted
                or callback.serviced_by_agent_id == wanted["servicedByAgentId"]
            )
            and campaign_names[callback.campaign_id]
            in wanted.get("campaignNames", [campaign_names[callback.campaign_id]])
            and callback.job_id in wanted.get("jobIds", [callback.job_id])
            and callback.status.name in wanted.get("callbackStatuses", [callback.status.name])
            and callback.callback_type.name
            in wanted.get("callbackTypes", [callback.callback_type.name])
        )

    expected = [
        c.callback_id
        for c in sorted(filter(selected, callbacks), key=lambda c: (c.created_at, c.callback_id))
    ]
    assert expected, "the case should select rows"
    assert report["totalRecords"] == len(expected)
    assert rows == expected


def test_report_header_lists_period_and_filters_with_report_labels(graphql: GraphQLClient) -> None:
    report = graphql.data(
        REPORT,
        {
            "filters": {
                "agentId": "A1001",
                "callbackTypes": ["STRICT_AGENT", "CAMPAIGN"],
                "callbackStatuses": ["CAMPAIGN_TERMINATED"],
                "jobIds": [1001, 1002],
            },
            "first": 1,
        },
    )["callbacksScheduledDetails"]
    assert report["timePeriod"]["label"] == "Last 7 Days"
    assert report["timePeriod"]["timeZone"] == "UTC"
    assert report["filters"] == [
        {"name": "Agent ID", "value": "A1001"},
        {"name": "Job ID", "value": "1001, 1002"},
        {"name": "Callback Type", "value": "Strict agent, Campaign"},
        {"name": "Callback Status", "value": "Campaign Terminated"},
    ]
    query_time = dt.datetime.fromisoformat(report["queryTime"])
    assert abs(query_time - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)


def test_report_today_in_berlin_uses_local_midnights(graphql: GraphQLClient) -> None:
    report = graphql.data(
        REPORT, {"timePeriod": {"preset": "TODAY", "timeZone": "Europe/Berlin"}, "first": 0}
    )["callbacksScheduledDetails"]
    berlin = ZoneInfo("Europe/Berlin")
    today = dt.datetime.now(berlin).date()
    midnight = dt.datetime.combine(today, dt.time(), berlin)
    next_midnight = dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), berlin)
    assert dt.datetime.fromisoformat(report["timePeriod"]["from"]) == midnight
    assert dt.datetime.fromisoformat(report["timePeriod"]["to"]) == next_midnight
    assert report["timePeriod"]["label"] == "Today"


FULL_ROW = """
query Full($first: Int) {
  callbacksScheduledDetails(timePeriod: {preset: ALL}) {
    totalRecords
    rows(first: $first) {
      edges { cursor node {
        id callbackId callbackType campaignName campaignDisplayName jobId creatorAgentId createdFor
        contactId creationTime scheduledStartTime scheduledEndTime callbackStatus servicedByAgentId
        interactionAttemptTime customCompletionCode systemCompletionCode callId createdForAgentId
        campaign { id name displayName campaignType strategyName maxAttempts state endTime }
        job { id jobId startTime endTime state }
        creatorAgent { id agentId name }
        createdForAgent { agentId name }
        servicedByAgent { id agentId name }
        contact { id contactId firstName lastName phoneNumber email timeZone excluded }
        attempts { id attemptTime agentId customCompletionCode systemCompletionCode dummy }
      } }
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    }
  }
}
"""


@pytest.mark.parametrize("page_size", [10, 100, 500])
def test_report_full_page_runs_statements_bounded_by_its_shape_not_its_size(
    both_paths_graphql: GraphQLClient, page_size: int
) -> None:
    graphql = both_paths_graphql
    report = graphql.data(FULL_ROW, {"first": page_size})["callbacksScheduledDetails"]
    assert len(report["rows"]["edges"]) == page_size
    if graphql.compiled:
        # Rows with campaign, job, agents and contact joined on one connection, totalRecords
        # beside them on a second; one transaction on each. On PostgreSQL each row carries its
        # attempts (an array), and each connection runs its one statement in autocommit;
        # SQLite reads the attempts in a statement of their own, after the rows.
        assert len(graphql.statements) == graphql.report_statements, graphql.statements
        assert (graphql.checkouts, graphql.transactions) == (2, 2)
    else:
        # Rows (with their campaigns), totalRecords, jobs, agents, contacts, attempts.
        assert len(graphql.statements) == 6, graphql.statements


@pytest.mark.parametrize(
    ("time_period", "filters", "message"),
    [
        ({"preset": "TODAY", "lastDays": 3}, None, "at most one of"),
        ({"from": "2026-05-02T00:00:00Z", "to": "2026-05-01T00:00:00Z"}, None, "must be before"),
        ({"from": "2026-05-02T00:00:00Z"}, None, "must be given together"),
        ({"lastDays": 0}, None, "between 1 and 99"),
        ({"lastHours": 100}, None, "between 1 and 99"),
        ({"preset": "TODAY", "timeZone": "Mars/Olympus"}, None, "IANA time zone"),
        ({"from": "2020-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, None, "at most 366 days"),
        (None, {"campaignNames": []}, "filters.campaignNames is empty"),
    ],
)
def test_report_bad_input_is_bad_user_input_before_any_sql(
    graphql: GraphQLClient,
    time_period: dict[str, Any] | None,
    filters: dict[str, Any] | None,
    message: str,
) -> None:
    body = graphql.execute(REPORT, {"timePeriod": time_period, "filters": filters, "first": 5})
    error = body["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert message in error["message"]
    assert graphql.statements == []


def test_dates_without_an_offset_are_the_named_zones_days(graphql: GraphQLClient) -> None:
    period = graphql.data(
        """{ callbacksScheduledDetails(timePeriod: {from: "2026-11-01", to: "2026-11-15",
                                                   timeZone: "Europe/Berlin"}) {
               timePeriod { from to timeZone label } } }"""
    )["callbacksScheduledDetails"]["timePeriod"]
    assert period == {
        "from": "2026-10-31T23:00:00+00:00",
        "to": "2026-11-14T23:00:00+00:00",
        "timeZone": "Europe/Berlin",
        "label": "Between 2026-11-01 00:00 and 2026-11-15 00:00 (Europe/Berlin)",
    }
