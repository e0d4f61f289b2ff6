"""The report as CSV (SPEC 6): the same rows as the GraphQL report, written as the report
labels them; its parameters and their errors; keys, agent scope and signed links; streaming.

The expected files are built here from the GraphQL report (every page of it) with this file's
own table of the report's labels, not with the service's.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import datetime as dt
import io
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit
from zoneinfo import ZoneInfo

import httpx2
import pytest
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.types import Message

from service.app import create_app
from service.auth.api_keys import Principal, create_api_key, revoke_api_key
from service.auth.signed_links import sign_link
from service.db.models.api_key import Role
from service.reports.callbacks_scheduled_details import csv_export
from service.reports.callbacks_scheduled_details.csv_links import signed_csv_path
from service.settings import Settings
from tests.graphql_client import GraphQLClient, on_database, serve_graphql

CSV_PATH = "/reports/callbacks-scheduled-details.csv"

HEADER = [
    "Campaign Name",
    "Job ID",
    "Creator Agent ID",
    "Callback ID",
    "Callback Type",
    "Created For Campaign/Agent",
    "Contact ID",
    "Creation Time",
    "Scheduled Start Time",
    "Scheduled End Time",
    "Callback Status",
    "Serviced By Agent ID",
    "Interaction Attempt Time",
    "Custom Completion Code",
    "System Completion Code",
]
TYPE_LABELS = {
    "AGENT": "Agent",
    "CAMPAIGN": "Campaign",
    "STANDARD": "Standard",
    "STRICT_AGENT": "Strict agent",
}
STATUS_LABELS = {
    "ACTIVE": "Active",
    "COMPLETED": "Completed",
    "EXPIRED": "Expired",
    "CAMPAIGN_TERMINATED": "Campaign Terminated",
    "OVERWRITTEN": "Overwritten",
    "CONTACT_EXCLUDED": "Contact Excluded",
}
CODE_LABELS = {
    "RESTRICTED_DNC": "Restricted DNC",
    "RESTRICTED_OTHER": "Restricted Other",
    "CALLBACK_EXPIRED": "Callback Expired",
    "CALLBACK_POSTPONED": "Callback Postponed",
    "CONTACT_EXCLUDED": "Contact Excluded",
}

REPORT_PAGE = """
query Page($timePeriod: TimePeriodInput, $filters: CallbacksScheduledDetailsFilters,
           $after: String) {
  callbacksScheduledDetails(timePeriod: $timePeriod, filters: $filters) {
    timePeriod { timeZone }
    totalRecords
    rows(first: 500, after: $after) {
      edges { node {
        campaignDisplayName jobId creatorAgentId callbackId callbackType createdFor contactId
        creationTime scheduledStartTime scheduledEndTime callbackStatus servicedByAgentId
        interactionAttemptTime customCompletionCode systemCompletionCode
      } }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""

CSV_URL = """
query Link($timePeriod: TimePeriodInput, $filters: CallbacksScheduledDetailsFilters) {
  callbacksScheduledDetails(timePeriod: $timePeriod, filters: $filters) { queryTime csvUrl }
}
"""

# GraphQL's filter names and the CSV's parameter names for them.
FILTER_PARAMETERS = {
    "agentId": "agentId",
    "campaignNames": "campaignName",
    "jobIds": "jobId",
    "callbackTypes": "callbackType",
    "callbackStatuses": "callbackStatus",
    "contactId": "contactId",
    "servicedByAgentId": "servicedByAgentId",
}

Period = dict[str, Any] | None
Filters = dict[str, Any] | None


def csv_parameters(time_period: Period, filters: Filters) -> list[tuple[str, str]]:
    """The CSV's query parameters for a GraphQL period and filters."""
    parameters = [(name, str(value)) for name, value in (time_period or {}).items()]
    for name, value in (filters or {}).items():
        values = value if isinstance(value, list) else [value]
        parameters += [(FILTER_PARAMETERS[name], str(item)) for item in values]
    return parameters


def guarded(value: str) -> str:
    """What a cell becomes under the formula guard (OWASP's list)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def expected_rows(api: GraphQLClient, time_period: Period, filters: Filters) -> list[list[str]]:
    """Every row of the GraphQL report (all pages), as the CSV should write it."""
    rows: list[list[str]] = []
    cursor = None
    while True:
        report = api.data(
            REPORT_PAGE, {"timePeriod": time_period, "filters": filters, "after": cursor}
        )["callbacksScheduledDetails"]
        zone = ZoneInfo(report["timePeriod"]["timeZone"])

        def local(value: str | None, zone: ZoneInfo = zone) -> str:
            return (
                ""
                if value is None
                else dt.datetime.fromisoformat(value).astimezone(zone).isoformat()
            )

        for edge in report["rows"]["edges"]:
            node = edge["node"]
            code = node["systemCompletionCode"]
            rows.append(
                [
                    guarded(node["campaignDisplayName"]),
                    str(node["jobId"]),
                    guarded(node["creatorAgentId"]),
                    guarded(node["callbackId"]),
                    TYPE_LABELS[node["callbackType"]],
                    guarded(node["createdFor"]),
                    guarded(node["contactId"]),
                    local(node["creationTime"]),
                    local(node["scheduledStartTime"]),
                    local(node["scheduledEndTime"]),
                    STATUS_LABELS[node["callbackStatus"]],
                    guarded(node["servicedByAgentId"] or ""),
                    local(node["interactionAttemptTime"]),
                    guarded(node["customCompletionCode"] or ""),
                    CODE_LABELS[code] if code else "",
                ]
            )
        if not report["rows"]["pageInfo"]["hasNextPage"]:
            assert report["totalRecords"] == len(rows)
            return rows
        cursor = report["rows"]["pageInfo"]["endCursor"]


def download(
    api: GraphQLClient, parameters: list[tuple[str, str]] | str, **headers: str
) -> httpx2.Response:
    """GET the CSV, counting its statements; `parameters` as pairs, or a path with its query."""
    api.statements.clear()
    url = parameters if isinstance(parameters, str) else f"{CSV_PATH}?{urlencode(parameters)}"
    return api.client.get(url, headers=headers)


def rows_of(response: httpx2.Response) -> list[list[str]]:
    """The CSV's rows after its header row, which must be the report's labels."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.content.endswith(b"\r\n")
    header, *rows = csv.reader(io.StringIO(response.content.decode(), newline=""))
    assert header == HEADER
    return rows


# Periods and filters; the seed's callbacks were created in the 90 days to 2026-11-29.
CASES: list[tuple[Period, Filters]] = [
    ({"lastDays": 99}, None),
    (
        {"from": "2026-11-01", "to": "2026-11-20", "timeZone": "Europe/Berlin"},
        {"callbackStatuses": ["ACTIVE", "EXPIRED", "COMPLETED"]},
    ),
    ({"preset": "ALL", "timeZone": "America/New_York"}, {"agentId": "A1003"}),
    (
        {"preset": "ALL"},
        {"campaignNames": ["Spring Renewals", "Win Back"],
         "callbackTypes": ["AGENT", "STRICT_AGENT"]},
    ),
    ({"from": "2026-10-01T00:00:00Z", "to": "2026-11-29T03:00:00Z", "timeZone": "Asia/Kolkata"},
     {"jobIds": list(range(1001, 1200, 3)), "servicedByAgentId": "A1001"}),
    ({"preset": "LAST_MONTH", "timeZone": "Australia/Sydney"}, {"contactId": "C00000007"}),
]  # fmt: skip


@pytest.mark.parametrize("case", range(len(CASES)))
def test_csv_holds_the_graphql_reports_rows_as_the_report_labels_them(
    graphql: GraphQLClient, case: int
) -> None:
    time_period, filters = CASES[case]
    expected = expected_rows(graphql, time_period, filters)
    assert expected, "the case should select rows"
    assert rows_of(download(graphql, csv_parameters(time_period, filters))) == expected


def test_csv_without_a_period_is_the_last_7_days_and_may_hold_only_its_header(
    graphql: GraphQLClient,
) -> None:
    # The seed ends on 2026-11-29: none of its callbacks is of the last 7 days (from now).
    expected = expected_rows(graphql, None, None)
    response = download(graphql, [])
    assert rows_of(response) == expected
    today = dt.datetime.now(dt.UTC).date()
    first = (today - dt.timedelta(days=6)).isoformat()
    assert response.headers["content-disposition"] == (
        f'attachment; filename="callbacks-scheduled-details-{first}-to-{today.isoformat()}.csv"'
    )


def test_csv_names_its_file_by_the_periods_days_in_its_zone(graphql: GraphQLClient) -> None:
    between = download(
        graphql, [("from", "2026-11-01"), ("to", "2026-11-08"), ("timeZone", "Europe/Berlin")]
    )
    assert between.headers["content-disposition"] == (
        'attachment; filename="callbacks-scheduled-details-2026-11-01-to-2026-11-07.csv"'
    )
    everything = download(graphql, [("preset", "ALL")])
    assert everything.headers["content-disposition"] == (
        'attachment; filename="callbacks-scheduled-details-all.csv"'
    )
    assert everything.headers["cache-control"] == "no-store"
    # A HEAD answers the same headers without reading a row.
    graphql.statements.clear()
    head = graphql.client.head(f"{CSV_PATH}?preset=ALL")
    assert head.status_code == 200
    assert head.headers["content-disposition"] == everything.headers["content-disposition"]
    assert head.content == b""
    assert graphql.statements == []


@pytest.mark.parametrize(
    ("parameters", "reason"),
    [
        ([("preset", "ALL"), ("agent", "A1")], "unknown parameter 'agent'"),
        ([("jobId", "1001"), ("jobId", "x")], "jobId must be a whole number, got 'x'"),
        ([("jobId", "99999999999")], "jobId must be a whole number"),
        ([("callbackType", "PREFERRED")], "callbackType must be one of AGENT, CAMPAIGN"),
        ([("callbackStatus", "Active")], "callbackStatus must be one of ACTIVE"),
        ([("preset", "SOMETIME")], "preset must be one of ALL, TODAY"),
        ([("preset", "TODAY"), ("lastDays", "3")], "at most one of preset, lastDays"),
        ([("from", "2026-11-01")], "from and to must be given together"),
        ([("from", "2026-11-02"), ("to", "2026-11-01")], "from must be before to"),
        ([("from", "yesterday"), ("to", "2026-11-01")], "from must be an ISO 8601 date"),
        ([("from", "2026-11-01T00:00:00 01:00"), ("to", "2026-11-02")],
         "send the offset's '+' as %2B"),
        ([("lastDays", "0")], "lastDays must be between 1 and 99, got 0"),
        ([("lastHours", "1.5")], "lastHours must be a whole number"),
        ([("preset", "TODAY"), ("timeZone", "Mars/Olympus")], "timeZone must be an IANA time zone"),
        ([("from", "2020-01-01"), ("to", "2026-01-01")], "at most 366 days after from"),
        ([("agentId", "A1"), ("agentId", "A2")], "agentId is given 2 times; give it once"),
        ([("campaignName", "")], "campaignName is empty"),
    ],
)  # fmt: skip
def test_a_bad_parameter_gets_400_with_a_one_line_reason_and_no_file(
    graphql: GraphQLClient, parameters: list[tuple[str, str]], reason: str
) -> None:
    response = download(graphql, parameters)
    assert response.status_code == 400
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert reason in response.text
    assert response.text.endswith("\n")
    assert response.text.count("\n") == 1
    assert graphql.statements == []


def test_csv_reads_its_rows_in_one_statement_whatever_their_number(
    graphql: GraphQLClient,
) -> None:
    few = rows_of(download(graphql, [("preset", "ALL"), ("contactId", "C00000007")]))
    few_statements = list(graphql.statements)
    many = rows_of(download(graphql, [("preset", "ALL")]))
    assert 0 < len(few) <= 10
    assert len(many) >= 1000
    # The rows with their campaigns, by creation time then callback ID (the report's order);
    # open mode checks no key.
    assert len(few_statements) == len(graphql.statements) == 1, graphql.statements


# Quoting and the formula guard -------------------------------------------------------------

AWKWARD_CAMPAIGN = 'Sales, "North"\nRegion'
FORMULA_CAMPAIGN = '=HYPERLINK("http://x")'
SETUP = """
mutation Setup($awkward: String!, $formula: String!) {
  a: upsertCampaign(input: {name: $awkward, campaignType: FINITE, strategy: "S,1",
                            maxAttempts: 2}) { name }
  f: upsertCampaign(input: {name: $formula, campaignType: INFINITE, strategy: "Plain",
                            maxAttempts: 2}) { name }
  upsertAgent(input: {agentId: "-A7", name: "Dash"}) { agentId }
  b: upsertAgent(input: {agentId: "@B8", name: "At"}) { agentId }
  upsertContact(input: {contactId: "=1+2", firstName: "F", lastName: "L", phone: "1",
                        timeZone: "UTC"}) { contactId }
  j1: startJob(input: {jobId: 7001, campaignName: $awkward,
                       startTime: "2026-11-01T00:00:00Z"}) { jobId }
  j2: startJob(input: {jobId: 7002, campaignName: $formula,
                       startTime: "2026-11-01T00:00:00Z"}) { jobId }
}
"""
SCHEDULE = """
mutation Schedule($input: ScheduleCallbackInput!) { scheduleCallback(input: $input) { callbackId } }
"""
ATTEMPT = """
mutation Attempt($input: RecordCallbackAttemptInput!) {
  recordCallbackAttempt(input: $input) { callbackId }
}
"""


def test_csv_quotes_as_rfc_4180_says_and_keeps_formulas_as_text(
    empty_graphql: GraphQLClient,
) -> None:
    api = empty_graphql
    api.data(SETUP, {"awkward": AWKWARD_CAMPAIGN, "formula": FORMULA_CAMPAIGN})
    schedule: dict[str, Any] = {
        "jobId": 7001,
        "creatorAgentId": "-A7",
        "contactId": "=1+2",
        "creationTime": "2026-11-02T10:00:00Z",
        "scheduledStartTime": "2026-11-03T10:00:00Z",
        "scheduledEndTime": "2026-11-04T10:00:00Z",
    }
    api.data(
        SCHEDULE,
        {"input": {**schedule, "callbackId": "+CB1", "callbackType": "CAMPAIGN", "callId": "c1"}},
    )
    api.data(
        SCHEDULE,
        {
            "input": {
                **schedule,
                "jobId": 7002,
                "callbackId": "CB2",
                "callbackType": "CAMPAIGN",
                "callId": "c2",
                "creationTime": "2026-11-02T11:00:00Z",
            }
        },
    )
    api.data(
        ATTEMPT,
        {
            "input": {
                "callbackId": "+CB1",
                "attemptTime": "2026-11-03T11:00:00Z",
                "agentId": "@B8",
                "customCompletionCode": 'Paid, "in full"',
                "completed": True,
            }
        },
    )
    api.data(
        ATTEMPT,
        {
            "input": {
                "callbackId": "CB2",
                "attemptTime": "2026-11-03T12:00:00Z",
                "agentId": "-A7",
                "customCompletionCode": "\tSUM(A1)",
                "completed": True,
            }
        },
    )
    response = download(api, [("preset", "ALL"), ("timeZone", "Europe/Berlin")])
    assert rows_of(response) == [
        [
            '[Finite][S,1] Sales, "North"\nRegion',
            "7001",
            "'-A7",
            "'+CB1",
            "Campaign",
            'Sales, "North"\nRegion',
            "'=1+2",
            "2026-11-02T11:00:00+01:00",
            "2026-11-03T11:00:00+01:00",
            "2026-11-04T11:00:00+01:00",
            "Completed",
            "'@B8",
            "2026-11-03T12:00:00+01:00",
            'Paid, "in full"',
            "",
        ],
        [
            '[Infinite][Plain] =HYPERLINK("http://x")',
            "7002",
            "'-A7",
            "CB2",
            "Campaign",
            '\'=HYPERLINK("http://x")',
            "'=1+2",
            "2026-11-02T12:00:00+01:00",
            "2026-11-03T11:00:00+01:00",
            "2026-11-04T11:00:00+01:00",
            "Completed",
            "'-A7",
            "2026-11-03T13:00:00+01:00",
            "'\tSUM(A1)",
            "",
        ],
    ]
    # RFC 4180 on the wire: CRLF between records, fields with a comma, quote or line break
    # quoted, quotes doubled; the line break inside a field kept as it is.
    assert (
        b'"[Finite][S,1] Sales, ""North""\nRegion",7001,\'-A7,\'+CB1,Campaign,'
        b'"Sales, ""North""\nRegion",\'=1+2,2026-11-02T11:00:00+01:00,' in response.content
    )
    assert b',"Paid, ""in full""",\r\n' in response.content


# Keys: who may download, an agent's own rows, signed links ---------------------------------


@dataclass
class KeyedService:
    """The API over seeded data with keys required: a viewer's and an agent's."""

    api: GraphQLClient
    database_url: URL
    keys: dict[Role, str]
    key_ids: dict[Role, int]
    agent_id: str

    def use(self, role: Role | None) -> None:
        """Send GraphQL requests with `role`'s key (None: no key)."""
        self.api.headers = {"Authorization": f"Bearer {self.keys[role]}"} if role else {}

    def bearer(self, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}


# An agent seen through all three of its callback columns: created, assigned and serviced.
AGENT = "A1003"


@pytest.fixture(params=["compiled", "general"])
def keyed(seeded_database_url: URL, request: pytest.FixtureRequest) -> Iterator[KeyedService]:
    settings = Settings(
        database_url=seeded_database_url,
        max_page_size=500,
        expiry_sweep_seconds=0,
        compiled_execution=request.param == "compiled",
    )

    async def issue(sessions: async_sessionmaker[AsyncSession]) -> dict[Role, tuple[int, str]]:
        keys = {}
        for role in (Role.VIEWER, Role.AGENT):
            agent = AGENT if role is Role.AGENT else None
            row, key = await create_api_key(sessions, role, agent_id=agent)
            keys[role] = (row.id, key)
        return keys

    issued = on_database(seeded_database_url, issue)
    with contextlib.contextmanager(serve_graphql)(settings) as api:
        yield KeyedService(
            api,
            seeded_database_url,
            {role: key for role, (_id, key) in issued.items()},
            {role: key_id for role, (key_id, _key) in issued.items()},
            AGENT,
        )


def test_csv_needs_a_key_once_keys_exist(keyed: KeyedService) -> None:
    parameters = [("preset", "ALL")]
    refused = download(keyed.api, parameters)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == 'Bearer realm="pomreport"'
    assert "needs an API key" in refused.text
    assert refused.text.count("\n") == 1
    wrong = download(keyed.api, parameters, Authorization="Bearer pomr_not-a-key")
    assert wrong.status_code == 401
    malformed = download(keyed.api, [("preset", "ALL"), ("jobId", "x")])
    assert malformed.status_code == 401, "who asks is checked before what is asked"
    assert rows_of(download(keyed.api, parameters, **keyed.bearer(Role.VIEWER)))


def test_an_agent_keys_csv_holds_the_agents_rows_as_its_report_does(keyed: KeyedService) -> None:
    time_period, filters = {"preset": "ALL"}, {"callbackStatuses": ["ACTIVE", "COMPLETED"]}
    keyed.use(Role.AGENT)
    expected = expected_rows(keyed.api, time_period, filters)
    parameters = csv_parameters(time_period, filters)
    rows = rows_of(download(keyed.api, parameters, **keyed.bearer(Role.AGENT)))
    assert rows == expected
    # Creator, Created For (an agent's ID for AGENT and STRICT_AGENT) or Serviced By.
    assert all(AGENT in (row[2], row[5], row[11]) for row in rows)
    assert {AGENT} < {row[2] for row in rows}, "rows created by other agents are seen too"
    everyone = rows_of(download(keyed.api, parameters, **keyed.bearer(Role.VIEWER)))
    assert len(everyone) > len(rows)


def _link(keyed: KeyedService, role: Role, time_period: Period, filters: Filters) -> str:
    keyed.use(role)
    answered = keyed.api.client.app.state.compiled_queries.answered  # type: ignore[attr-defined]
    report = keyed.api.data(CSV_URL, {"timePeriod": time_period, "filters": filters})[
        "callbacksScheduledDetails"
    ]
    compiled = keyed.api.client.app.state.compiled_queries.answered > answered  # type: ignore[attr-defined]
    assert compiled == keyed.api.compiled, "csvUrl is answered on the path the test asked for"
    keyed.use(None)
    url: str = report["csvUrl"]
    return url


def test_csv_url_downloads_the_reports_rows_without_a_header(keyed: KeyedService) -> None:
    time_period = {"from": "2026-11-01", "to": "2026-11-20", "timeZone": "Europe/Berlin"}
    job_ids = list(range(1001, 1200, 2))
    filters = {"callbackStatuses": ["ACTIVE", "EXPIRED"], "jobIds": job_ids}
    url = _link(keyed, Role.VIEWER, time_period, filters)
    path, query = url.split("?")
    assert path == CSV_PATH
    parameters = parse_qsl(query)
    # The resolved bounds, in the period's zone, stand for the period.
    assert parameters[:3] == [
        ("callbackStatus", "ACTIVE"),
        ("callbackStatus", "EXPIRED"),
        ("from", "2026-11-01T00:00:00+01:00"),
    ]
    assert ("to", "2026-11-20T00:00:00+01:00") in parameters
    assert ("timeZone", "Europe/Berlin") in parameters
    assert [value for name, value in parameters if name == "jobId"] == [
        str(job_id) for job_id in job_ids
    ]
    assert parameters[-1][0] == "token"
    keyed.use(Role.VIEWER)
    expected = expected_rows(keyed.api, time_period, filters)
    assert expected
    # A plain browser link: no Authorization header; one statement for the key, one for rows.
    assert rows_of(download(keyed.api, url)) == expected
    assert len(keyed.api.statements) == 2, keyed.api.statements
    # The token signs the parameters, not their order.
    reordered = f"{CSV_PATH}?{urlencode([*reversed(parameters[:-1]), parameters[-1]])}"
    assert rows_of(download(keyed.api, reordered)) == expected


def test_csv_url_of_an_agent_key_holds_its_rows_only(keyed: KeyedService) -> None:
    url = _link(keyed, Role.AGENT, {"preset": "ALL"}, None)
    rows = rows_of(download(keyed.api, url))
    assert rows
    assert all(AGENT in (row[2], row[5], row[11]) for row in rows)


def _with(url: str, change: str) -> str:
    """The link with one of its parameters changed, added or dropped."""
    path, query = url.split("?")
    parameters = parse_qsl(query)
    token = parameters.pop()
    if change == "changed":
        parameters = [(n, "COMPLETED" if n == "callbackStatus" else v) for n, v in parameters]
    elif change == "added":
        parameters.append(("agentId", "A1001"))
    elif change == "dropped":
        parameters = [(n, v) for n, v in parameters if n != "callbackStatus"]
    elif change == "token":
        token = ("token", token[1][:-2] + ("AA" if not token[1].endswith("AA") else "BB"))
    elif change == "expiry pushed":
        expires, key, signature = token[1].split(".")
        token = ("token", f"{int(expires) + 3600}.{key}.{signature}")
    elif change == "other key":
        expires, key, signature = token[1].split(".")
        token = ("token", f"{expires}.{int(key) + 1}.{signature}")
    return f"{path}?{urlencode([*parameters, token])}"


@pytest.mark.parametrize(
    "change", ["changed", "added", "dropped", "token", "expiry pushed", "other key"]
)
def test_csv_url_altered_in_any_way_gets_401(keyed: KeyedService, change: str) -> None:
    url = _link(keyed, Role.VIEWER, {"lastDays": 99}, {"callbackStatuses": ["ACTIVE"]})
    assert download(keyed.api, url).status_code == 200
    refused = download(keyed.api, _with(url, change))
    assert refused.status_code == 401
    assert "get a new link" in refused.text
    # A header does not mend a broken token: the token is what the link is judged by.
    assert download(keyed.api, _with(url, change), **keyed.bearer(Role.VIEWER)).status_code == 401


def test_csv_url_stops_working_when_it_expires(keyed: KeyedService) -> None:
    settings: Settings = keyed.api.client.app.state.settings  # type: ignore[attr-defined]
    viewer = Principal(Role.VIEWER, None, keyed.key_ids[Role.VIEWER], "viewer")
    parameters = [("preset", "ALL")]
    now = dt.datetime.now(dt.UTC)
    fresh = signed_csv_path(parameters, principal=viewer, settings=settings, now=now)
    assert download(keyed.api, fresh).status_code == 200
    # Signed 5 minutes and a second ago: expired a second ago.
    stale = signed_csv_path(
        parameters,
        principal=viewer,
        settings=settings,
        now=now - dt.timedelta(minutes=5, seconds=1),
    )
    refused = download(keyed.api, stale)
    assert refused.status_code == 401
    assert "the link expired at" in refused.text


def test_csv_url_stops_working_when_its_key_is_revoked(keyed: KeyedService) -> None:
    url = _link(keyed, Role.AGENT, {"preset": "ALL"}, None)
    assert download(keyed.api, url).status_code == 200
    on_database(
        keyed.database_url, lambda sessions: revoke_api_key(sessions, keyed.key_ids[Role.AGENT])
    )
    # At once, though the key's verdict may still be cached for Authorization headers.
    refused = download(keyed.api, url)
    assert refused.status_code == 401
    assert "revoked" in refused.text


def test_csv_url_signed_by_another_secret_gets_401(keyed: KeyedService) -> None:
    parameters = [("preset", "ALL")]
    token = sign_link(
        "another service's secret, 32 characters or more",
        CSV_PATH,
        parameters,
        key_id=keyed.key_ids[Role.VIEWER],
        expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5),
    )
    response = download(keyed.api, f"{CSV_PATH}?{urlencode([*parameters, ('token', token)])}")
    assert response.status_code == 401


def test_csv_url_in_open_mode_binds_the_parameters_without_a_key(graphql: GraphQLClient) -> None:
    url = graphql.data(CSV_URL, {"timePeriod": {"preset": "ALL"}})["callbacksScheduledDetails"][
        "csvUrl"
    ]
    token = dict(parse_qsl(urlsplit(url).query))["token"]
    assert token.split(".")[1] == "open"
    assert len(rows_of(download(graphql, url))) > 1000
    assert download(graphql, _with(url, "added")).status_code == 401


# Streaming ---------------------------------------------------------------------------------


async def _get(
    app: Any, path: str, query: str, *, fail_after_bodies: int | None = None
) -> list[Message]:
    """GET through the ASGI app itself; every message it sends. With `fail_after_bodies`, the
    client goes away after that many body messages (the send raises, as uvicorn's does)."""
    messages: list[Message] = []

    async def receive() -> Message:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        bodies = sum(1 for sent in messages if sent["type"] == "http.response.body")
        if fail_after_bodies is not None and bodies >= fail_after_bodies:
            raise OSError("client went away")
        messages.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"pomreport")],
        "client": ("127.0.0.1", 50000),
        "server": ("pomreport", 80),
    }
    try:
        await app(scope, receive, send)
    except Exception:
        if fail_after_bodies is None:
            raise
    return messages


async def test_csv_streams_chunk_by_chunk_and_gives_its_connection_back(
    seeded_database_url: URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(csv_export, "CHUNK_ROWS", 100)
    settings = Settings(
        open_without_keys=True, database_url=seeded_database_url, expiry_sweep_seconds=0
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        messages = await _get(app, CSV_PATH, "preset=ALL")
        bodies = [message for message in messages if message["type"] == "http.response.body"]
        # 1200 rows, 100 a chunk: each chunk a message of its own as soon as it is read.
        assert len(bodies) == 13, len(bodies)
        assert all(message["more_body"] for message in bodies[:-1])
        assert bodies[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
        text = b"".join(message["body"] for message in bodies).decode()
        assert text.count("\r\n") == 1201
        assert app.state.engine.sync_engine.pool.checkedout() == 0

        # A client that goes away mid-download: the cursor ends, the connection goes back.
        cut = await _get(app, CSV_PATH, "preset=ALL", fail_after_bodies=3)
        assert sum(1 for message in cut if message["type"] == "http.response.body") == 3
        assert app.state.engine.sync_engine.pool.checkedout() == 0


# The writer ------------------------------------------------------------------------------


def test_csv_text_writes_exactly_what_csv_writer_writes() -> None:
    # Chunks of plain rows take the shortcut, chunks with one awkward cell csv.writer itself;
    # both must come out as csv.writer writes them.
    awkward = ["a,b", 'say "hi"', "two\nlines", "cr\ronly", "", " spaced ", "'quoted'", "é, ü"]
    chances = random.Random(11)
    for _ in range(200):
        rows = [
            tuple(
                chances.choice(awkward) if chances.random() < 0.02 else f"cell{chances.random()}"
                for _ in range(15)
            )
            for _ in range(chances.randrange(1, 30))
        ]
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\r\n").writerows(rows)
        assert csv_export.csv_text(rows) == buffer.getvalue()
    assert csv_export.csv_text([]) == ""
