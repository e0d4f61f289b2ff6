"""callbacksScheduledSummary: counts of the report's callbacks by any dimensions, checked
against a GROUP BY written here in plain SQL, and local days and hours against zoneinfo."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections import Counter
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.db.models.callback import CallbackStatus, CallbackType, SystemCompletionCode
from tests.auth.test_authorization import secured_service
from tests.graphql_client import SEED_AS_OF, GraphQLClient, on_database

SUMMARY = """
query Summary($timePeriod: TimePeriodInput, $filters: CallbacksScheduledDetailsFilters,
              $groupBy: [SummaryDimension!]!) {
  callbacksScheduledSummary(timePeriod: $timePeriod, filters: $filters, groupBy: $groupBy) {
    timePeriod { from to timeZone label }
    queryTime
    filters { name value }
    totalRecords
    groups { count callbackStatus callbackType campaignName creatorAgentId servicedByAgentId
             systemCompletionCode creationDay creationHour }
  }
}
"""

REPORT_TOTAL = """
query Total($timePeriod: TimePeriodInput, $filters: CallbacksScheduledDetailsFilters) {
  callbacksScheduledDetails(timePeriod: $timePeriod, filters: $filters) { totalRecords }
}
"""

# Each dimension's column in plain SQL, and its field in a group.
DIMENSIONS = {
    "CALLBACK_STATUS": ("c.status", "callbackStatus"),
    "CALLBACK_TYPE": ("c.callback_type", "callbackType"),
    "CAMPAIGN": ("cp.name", "campaignName"),
    "CREATOR_AGENT": ("c.creator_agent_id", "creatorAgentId"),
    "SERVICED_BY_AGENT": ("c.serviced_by_agent_id", "servicedByAgentId"),
    "SYSTEM_COMPLETION_CODE": ("c.system_completion_code", "systemCompletionCode"),
    "CREATION_DAY": ("", "creationDay"),
    "CREATION_HOUR": ("", "creationHour"),
}
GROUP_FIELDS = [field for _column, field in DIMENSIONS.values()]
TIME_DIMENSIONS = ("CREATION_DAY", "CREATION_HOUR")

LAST_20_DAYS = {
    "from": (SEED_AS_OF - dt.timedelta(days=20)).isoformat(),
    "to": SEED_AS_OF.isoformat(),
}
# Periods over a change of the clocks: Berlin goes back on 2026-10-25 (a 25-hour day),
# New York on 2026-11-01.
BERLIN_WEEK = {"from": "2026-10-21", "to": "2026-10-29", "timeZone": "Europe/Berlin"}
NEW_YORK_WEEK = {"from": "2026-10-28", "to": "2026-11-04", "timeZone": "America/New_York"}

CASES: list[tuple[dict[str, Any] | None, dict[str, Any] | None, list[str]]] = [
    ({"preset": "ALL"}, None, ["CALLBACK_STATUS"]),
    (LAST_20_DAYS, None, ["CALLBACK_TYPE", "CALLBACK_STATUS"]),
    (BERLIN_WEEK, None, ["CREATION_DAY"]),
    (BERLIN_WEEK, None, ["CREATION_HOUR"]),
    (
        NEW_YORK_WEEK,
        {"callbackTypes": ["AGENT", "STRICT_AGENT"]},
        ["CREATION_DAY", "CALLBACK_TYPE"],
    ),
    (NEW_YORK_WEEK, None, ["CALLBACK_STATUS", "CREATION_HOUR", "CREATION_DAY"]),
    ({"lastDays": 99}, {"campaignNames": ["Spring Renewals", "Win Back"]}, ["CAMPAIGN"]),
    ({"preset": "ALL"}, {"servicedByAgentId": "A1001"}, ["SYSTEM_COMPLETION_CODE"]),
    (
        {"preset": "ALL", "timeZone": "Asia/Kolkata"},
        {"callbackStatuses": ["COMPLETED", "EXPIRED"]},
        ["CREATION_DAY", "SERVICED_BY_AGENT"],
    ),
    ({"preset": "ALL", "timeZone": "Asia/Kathmandu"}, None, ["CREATION_HOUR"]),
    (LAST_20_DAYS, {"agentId": "A1003"}, ["CREATOR_AGENT", "CREATION_DAY"]),
    ({"preset": "ALL", "timeZone": "America/New_York"}, None, list(DIMENSIONS)),
]

# Creation times around the changes of the clocks, and quarter-hour offsets' midnights.
EDGE_TIMES = [
    "2026-10-24T21:59:59+00:00",  # Berlin: 23:59:59 on the 24th (CEST)
    "2026-10-24T22:00:00+00:00",  # 00:00 on the 25th
    "2026-10-25T00:30:00+00:00",  # 02:30 CEST, the first 02:30
    "2026-10-25T00:59:59+00:00",  # 02:59:59 CEST
    "2026-10-25T01:00:00+00:00",  # 02:00 CET, the second 02:00
    "2026-10-25T01:30:00+00:00",  # 02:30 CET
    "2026-10-25T22:59:59+00:00",  # 23:59:59 on the 25th (CET): 25 hours after its midnight
    "2026-10-25T23:00:00+00:00",  # 00:00 on the 26th
    "2026-11-01T03:59:59+00:00",  # New York: 23:59:59 EDT on 31 October
    "2026-11-01T05:30:00+00:00",  # 01:30 EDT, the first 01:30
    "2026-11-01T06:30:00+00:00",  # 01:30 EST
    "2026-11-02T04:59:59+00:00",  # 23:59:59 EST on 1 November
    "2026-11-02T05:00:00+00:00",  # 00:00 on 2 November
    "2026-11-10T18:29:59+00:00",  # Kolkata (+05:30): 23:59:59 on the 10th
    "2026-11-10T18:30:00+00:00",  # 00:00 on the 11th
    "2026-11-10T18:14:59+00:00",  # Kathmandu (+05:45): 23:59:59 on the 10th
    "2026-11-10T18:15:00+00:00",  # 00:00 on the 11th
]


def _sql(url: URL, statement: str, **parameters: Any) -> list[Any]:
    async def rows(sessions: async_sessionmaker[AsyncSession]) -> list[Any]:
        async with sessions() as session:
            return list((await session.execute(text(statement), parameters)).all())

    return on_database(url, rows)


def _instant(value: Any) -> dt.datetime:
    """A stored creation time as an aware UTC instant (SQLite gives naive UTC text)."""
    moment = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    assert isinstance(moment, dt.datetime)
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment


def _bound(url: URL, moment: str) -> Any:
    """A period bound as the store compares creation times with it."""
    instant = dt.datetime.fromisoformat(moment).astimezone(dt.UTC)
    if url.get_backend_name() == "sqlite":
        return instant.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    return instant


def _quoted(values: list[Any]) -> str:
    return ", ".join(f"'{value}'" for value in values)


def _where(
    url: URL, period: dict[str, Any], filters: dict[str, Any] | None
) -> tuple[str, dict[str, Any]]:
    """The report's period and filters, written out in plain SQL."""
    conditions = ["1 = 1"]
    parameters: dict[str, Any] = {}
    if period["from"] is not None:
        conditions.append("c.created_at >= :start")
        parameters["start"] = _bound(url, period["from"])
    if period["to"] is not None:
        conditions.append("c.created_at < :end")
        parameters["end"] = _bound(url, period["to"])
    wanted = filters or {}
    columns = {
        "agentId": "c.creator_agent_id",
        "contactId": "c.contact_id",
        "servicedByAgentId": "c.serviced_by_agent_id",
        "campaignNames": "cp.name",
        "jobIds": "c.job_id",
        "callbackTypes": "c.callback_type",
        "callbackStatuses": "c.status",
    }
    for name, value in wanted.items():
        values = value if isinstance(value, list) else [value]
        conditions.append(f"{columns[name]} IN ({_quoted(values)})")
    return " AND ".join(conditions), parameters


def _expected_groups(
    url: URL,
    period: dict[str, Any],
    filters: dict[str, Any] | None,
    group_by: list[str],
    *,
    scope_agent: str | None = None,
) -> Counter[tuple[Any, ...]]:
    """Counts by the dimensions' values: a GROUP BY in SQL, creation days and hours placed
    in the period's zone by zoneinfo, one callback at a time."""
    where, parameters = _where(url, period, filters)
    if scope_agent is not None:
        where += (
            " AND (c.creator_agent_id = :agent OR c.created_for_agent_id = :agent"
            " OR c.serviced_by_agent_id = :agent)"
        )
        parameters["agent"] = scope_agent
    plain = [DIMENSIONS[d][0] for d in group_by if d not in TIME_DIMENSIONS]
    timed = any(d in TIME_DIMENSIONS for d in group_by)
    selected = [*plain, "c.created_at" if timed else "COUNT(*)"]
    statement = f"SELECT {', '.join(selected)} FROM callback c JOIN campaign cp"
    statement += f" ON cp.id = c.campaign_id WHERE {where}"
    if not timed:
        statement += f" GROUP BY {', '.join(plain)}"
    zone = ZoneInfo(period["timeZone"])
    counts: Counter[tuple[Any, ...]] = Counter()
    for row in _sql(url, statement, **parameters):
        values = dict(zip([d for d in group_by if d not in TIME_DIMENSIONS], row, strict=False))
        if timed:
            local = _instant(row[-1]).astimezone(zone)
            values["CREATION_DAY"] = local.date().isoformat()
            # replace() keeps the fold: the second 02:30 of a night keeps its own offset.
            values["CREATION_HOUR"] = local.replace(minute=0, second=0, microsecond=0).isoformat()
        counts[tuple(values[d] for d in group_by)] += 1 if timed else row[-1]
    return counts


def _summary(
    graphql: GraphQLClient,
    time_period: dict[str, Any] | None,
    filters: dict[str, Any] | None,
    group_by: list[str],
) -> dict[str, Any]:
    variables = {"timePeriod": time_period, "filters": filters, "groupBy": group_by}
    summary: dict[str, Any] = graphql.data(SUMMARY, variables)["callbacksScheduledSummary"]
    return summary


def _actual_groups(summary: dict[str, Any], group_by: list[str]) -> Counter[tuple[Any, ...]]:
    """The summary's groups as counts by the dimensions' values; each combination once, and
    every dimension not grouped by null."""
    fields = [DIMENSIONS[d][1] for d in group_by]
    counts: Counter[tuple[Any, ...]] = Counter()
    for group in summary["groups"]:
        key = tuple(group[field] for field in fields)
        assert key not in counts, f"{key} is two groups"
        assert all(group[f] is None for f in GROUP_FIELDS if f not in fields), group
        counts[key] = group["count"]
    return counts


# Each enum dimension's values, in the schema's order.
_POSITIONS = {
    dimension: {value.name: position for position, value in enumerate(values)}
    for dimension, values in (
        ("CALLBACK_STATUS", CallbackStatus),
        ("CALLBACK_TYPE", CallbackType),
        ("SYSTEM_COMPLETION_CODE", SystemCompletionCode),
    )
}


def _order(summary: dict[str, Any], group_by: list[str]) -> list[tuple[Any, ...]]:
    """The groups' keys sorted as promised: enums as declared, text by code point, days and
    hours in time (as instants), null last."""

    def value_order(dimension: str, value: Any) -> tuple[bool, Any]:
        if value is None:
            return True, 0
        if dimension in _POSITIONS:
            return False, _POSITIONS[dimension][value]
        if dimension == "CREATION_HOUR":
            return False, dt.datetime.fromisoformat(value)
        return False, value

    keys = [tuple(group[DIMENSIONS[d][1]] for d in group_by) for group in summary["groups"]]
    return sorted(
        keys, key=lambda key: [value_order(d, v) for d, v in zip(group_by, key, strict=True)]
    )


@pytest.fixture
def edge_callbacks(graphql: GraphQLClient, seeded_database_url: URL) -> list[str]:
    """Callbacks created at EDGE_TIMES, fed in through the API, beside the seeded ones."""
    job_id, contact_id, agent_id = _sql(
        seeded_database_url,
        """SELECT j.job_id, t.contact_id, a.agent_id
           FROM job j JOIN campaign c ON c.id = j.campaign_id, contact t, agent a
           WHERE c.state = 'RUNNING' AND j.state <> 'COMPLETED' AND t.excluded_at IS NULL
           ORDER BY j.job_id, t.contact_id, a.agent_id LIMIT 1""",
    )[0]
    for number, created in enumerate(EDGE_TIMES):
        end = dt.datetime.fromisoformat(created) + dt.timedelta(days=60)
        graphql.data(
            "mutation($input: ScheduleCallbackInput!) "
            "{ scheduleCallback(input: $input) { callbackId } }",
            {
                "input": {
                    "callbackId": f"EDGE-{number}",
                    "callbackType": "CAMPAIGN",
                    "jobId": job_id,
                    "creatorAgentId": agent_id,
                    "contactId": contact_id,
                    "callId": f"CALL-EDGE-{number}",
                    "creationTime": created,
                    "scheduledStartTime": end.isoformat(),
                    "scheduledEndTime": end.isoformat(),
                }
            },
        )
    return EDGE_TIMES


def test_summaries_equal_an_independent_group_by(
    graphql: GraphQLClient, seeded_database_url: URL, edge_callbacks: list[str]
) -> None:
    for case, (time_period, filters, group_by) in enumerate(CASES):
        summary = _summary(graphql, time_period, filters, group_by)
        assert len(graphql.statements) == 1, (case, graphql.statements)
        expected = _expected_groups(seeded_database_url, summary["timePeriod"], filters, group_by)
        assert expected, f"case {case} should count callbacks"
        assert _actual_groups(summary, group_by) == expected, f"case {case}"
        assert summary["totalRecords"] == sum(expected.values()), f"case {case}"
        keys = [tuple(g[DIMENSIONS[d][1]] for d in group_by) for g in summary["groups"]]
        assert keys == _order(summary, group_by), f"case {case}"
        report = graphql.data(REPORT_TOTAL, {"timePeriod": time_period, "filters": filters})
        assert report["callbacksScheduledDetails"]["totalRecords"] == summary["totalRecords"]


def test_a_local_day_across_a_change_of_the_clocks_is_its_23_or_25_hours(
    graphql: GraphQLClient, seeded_database_url: URL, edge_callbacks: list[str]
) -> None:
    for zone_name, period, changed_day, hours in [
        ("Europe/Berlin", BERLIN_WEEK, dt.date(2026, 10, 25), 25),
        ("America/New_York", NEW_YORK_WEEK, dt.date(2026, 11, 1), 25),
        ("Europe/Berlin", {**BERLIN_WEEK, "from": "2026-03-27", "to": "2026-03-31"}, None, 23),
    ]:
        zone = ZoneInfo(zone_name)
        summary = _summary(graphql, period, None, ["CREATION_DAY"])
        start = dt.datetime.combine(dt.date.fromisoformat(period["from"]), dt.time(), zone)
        assert dt.datetime.fromisoformat(summary["timePeriod"]["from"]) == start
        days = {group["creationDay"]: group["count"] for group in summary["groups"]}
        day = changed_day or dt.date(2026, 3, 29)
        midnight = dt.datetime.combine(day, dt.time(), zone)
        next_midnight = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), zone)
        # In UTC: Python subtracts two times of one zone by their wall clocks.
        assert next_midnight.astimezone(dt.UTC) - midnight.astimezone(dt.UTC) == dt.timedelta(
            hours=hours
        )
        # The day's callbacks counted by their UTC instants alone.
        (in_day,) = _sql(
            seeded_database_url,
            "SELECT COUNT(*) FROM callback c WHERE c.created_at >= :start AND c.created_at < :end",
            start=_bound(seeded_database_url, midnight.isoformat()),
            end=_bound(seeded_database_url, next_midnight.isoformat()),
        )[0]
        assert days.get(day.isoformat(), 0) == in_day
        if changed_day is not None:
            assert in_day > 0

    by_hour = _summary(
        graphql, BERLIN_WEEK, {"agentId": _edge_agent(seeded_database_url)}, ["CREATION_HOUR"]
    )
    twice = [g for g in by_hour["groups"] if g["creationHour"].startswith("2026-10-25T02:00")]
    assert [g["creationHour"] for g in twice] == [
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:00:00+01:00",
    ]


def _edge_agent(url: URL) -> str:
    (agent,) = _sql(url, "SELECT creator_agent_id FROM callback WHERE callback_id = 'EDGE-0'")[0]
    assert isinstance(agent, str)
    return agent


def test_postgresql_buckets_days_the_same_way(
    graphql: GraphQLClient, seeded_database_url: URL, edge_callbacks: list[str]
) -> None:
    """On PostgreSQL, a GROUP BY of its own time zone conversion agrees."""
    if seeded_database_url.get_backend_name() != "postgresql":
        pytest.skip("SQLite has no time zones")
    for period in (BERLIN_WEEK, NEW_YORK_WEEK, {"preset": "ALL", "timeZone": "Asia/Kolkata"}):
        summary = _summary(graphql, period, None, ["CREATION_DAY"])
        where, parameters = _where(seeded_database_url, summary["timePeriod"], None)
        rows = _sql(
            seeded_database_url,
            "SELECT to_char(c.created_at AT TIME ZONE :zone, 'YYYY-MM-DD') AS day, COUNT(*)"
            f" FROM callback c JOIN campaign cp ON cp.id = c.campaign_id WHERE {where}"
            " GROUP BY day ORDER BY day",
            zone=period["timeZone"],
            **parameters,
        )
        assert [(g["creationDay"], g["count"]) for g in summary["groups"]] == [
            (day, count) for day, count in rows
        ]


def test_a_summary_answers_on_both_paths_in_one_statement(
    both_paths_graphql: GraphQLClient, seeded_database_url: URL
) -> None:
    """Each path answers the summary itself (the compiled path leaves none of it to the
    general one), in one statement."""
    graphql = both_paths_graphql
    app: Any = graphql.client.app
    left = app.state.compiled_queries.left
    answered = app.state.compiled_queries.answered
    group_by = ["CALLBACK_STATUS", "CREATION_DAY"]
    summary = _summary(graphql, NEW_YORK_WEEK, None, group_by)
    assert len(graphql.statements) == 1, graphql.statements
    assert app.state.compiled_queries.left == left
    assert app.state.compiled_queries.answered == answered + (1 if graphql.compiled else 0)
    expected = _expected_groups(seeded_database_url, summary["timePeriod"], None, group_by)
    assert _actual_groups(summary, group_by) == expected
    assert summary["totalRecords"] == sum(expected.values()) > 0
    # The header alone runs no statement.
    header = graphql.data(
        "{ callbacksScheduledSummary(groupBy: [CAMPAIGN]) { timePeriod { label } queryTime } }"
    )
    assert header["callbacksScheduledSummary"]["timePeriod"]["label"] == "Last 7 Days"
    assert graphql.statements == []


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "general"])
def test_an_agent_key_summarises_exactly_its_own_callbacks(
    seeded_database_url: URL, compiled: bool
) -> None:
    with contextlib.contextmanager(secured_service)(seeded_database_url, compiled=compiled) as (
        service
    ):
        group_by = ["CALLBACK_STATUS", "CREATOR_AGENT", "SERVICED_BY_AGENT", "CREATION_DAY"]
        for filters in (None, {"callbackStatuses": ["ACTIVE", "COMPLETED"]}):
            service.use("agent")
            summary = _summary(service.api, {"preset": "ALL"}, filters, group_by)
            expected = _expected_groups(
                seeded_database_url,
                summary["timePeriod"],
                filters,
                group_by,
                scope_agent=service.agent_id,
            )
            assert 10 < summary["totalRecords"] < 200
            assert _actual_groups(summary, group_by) == expected
            service.use("viewer")
            everyone = _summary(service.api, {"preset": "ALL"}, filters, group_by)
            assert everyone["totalRecords"] > summary["totalRecords"]


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"groupBy": []}, "groupBy is empty"),
        ({"groupBy": ["CAMPAIGN", "CREATION_DAY", "CAMPAIGN"]}, "groupBy names CAMPAIGN more"),
        (
            {"groupBy": ["CAMPAIGN"], "timePeriod": {"preset": "TODAY", "lastDays": 3}},
            "at most one of",
        ),
        (
            {"groupBy": ["CAMPAIGN"], "timePeriod": {"from": "2026-05-02", "to": "2026-05-01"}},
            "must be before",
        ),
        ({"groupBy": ["CAMPAIGN"], "timePeriod": {"timeZone": "Mars/Olympus"}}, "IANA time zone"),
        ({"groupBy": ["CAMPAIGN"], "filters": {"jobIds": []}}, "filters.jobIds is empty"),
    ],
)
def test_summary_bad_input_is_bad_user_input_before_any_sql(
    graphql: GraphQLClient, variables: dict[str, Any], message: str
) -> None:
    body = graphql.execute(SUMMARY, variables)
    error = body["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    assert message in error["message"]
    assert graphql.statements == []


def test_summary_header_is_the_reports(graphql: GraphQLClient) -> None:
    filters = {"agentId": "A1001", "callbackTypes": ["STRICT_AGENT", "CAMPAIGN"]}
    period = {"preset": "LAST_MONTH", "timeZone": "Europe/Berlin"}
    summary = _summary(graphql, period, filters, ["CALLBACK_TYPE"])
    report = graphql.data(
        "query($p: TimePeriodInput, $f: CallbacksScheduledDetailsFilters) {"
        " callbacksScheduledDetails(timePeriod: $p, filters: $f) {"
        " timePeriod { from to timeZone label } filters { name value } } }",
        {"p": period, "f": filters},
    )["callbacksScheduledDetails"]
    assert summary["timePeriod"] == report["timePeriod"]
    assert summary["filters"] == report["filters"]
    query_time = dt.datetime.fromisoformat(summary["queryTime"])
    assert abs(query_time - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)
