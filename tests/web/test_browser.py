"""The pages in a real browser: Debian's Chromium driven by Playwright, against `pomreport
serve` on seeded data, with every request to another origin refused (as on a network without
internet access).

Without Chromium the tests skip, except under CI=true, where they fail. With
POMREPORT_SCREENSHOT_DIR set they also save the screenshots the README shows.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Playwright,
    Route,
    expect,
    sync_playwright,
)

from service.graph.trusted_documents import SHIPPED_MANIFEST
from tests.serve_process import POMREPORT, ServeProcess, serving

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# The flags a root sandbox and a closed network need (the machine notes' probe used them).
CHROMIUM_ARGUMENTS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REPORT = """query Report($timePeriod: TimePeriodInput, $filters: CallbacksScheduledDetailsFilters,
    $after: String) {
  callbacksScheduledDetails(timePeriod: $timePeriod, filters: $filters) {
    totalRecords
    rows(first: 500, after: $after) {
      edges { node { callbackId callbackStatus } }
      pageInfo { hasNextPage endCursor }
    }
  }
}"""
COMPLETE = """mutation Complete($callbackId: String!) {
  recordCallbackAttempt(input: {callbackId: $callbackId, agentId: "A1001", completed: true,
                               customCompletionCode: "Sold"}) { callbackStatus }
}"""


@dataclass
class Served:
    """A seeded service with keys, and the requests its pages tried to send elsewhere."""

    process: ServeProcess
    operator_key: str
    outside_requests: list[str] = field(default_factory=list)

    def graphql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        response = httpx.post(
            f"{self.process.base_url}/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {self.operator_key}"},
            timeout=30,
        )
        body: dict[str, Any] = response.json()
        assert "errors" not in body, body
        data: dict[str, Any] = body["data"]
        return data

    def report_rows(self, variables: dict[str, Any]) -> tuple[int, list[dict[str, str]]]:
        """Total Records and every row (all pages) of the GraphQL report."""
        rows: list[dict[str, str]] = []
        after = None
        while True:
            report = self.graphql(REPORT, {**variables, "after": after})[
                "callbacksScheduledDetails"
            ]
            rows += [edge["node"] for edge in report["rows"]["edges"]]
            if not report["rows"]["pageInfo"]["hasNextPage"]:
                return report["totalRecords"], rows
            after = report["rows"]["pageInfo"]["endCursor"]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    if not Path(CHROMIUM).is_file():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install -y chromium")
        pytest.skip("no Chromium (apt-get install -y chromium)")
    playwright: Playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGUMENTS)
        yield browser
        browser.close()


def _command_on(directory: Path) -> Callable[..., str]:
    """`pomreport` on the SQLite file `serving(directory)` serves; returns what it prints."""
    environment = {**os.environ, "DATABASE_URL": f"sqlite:///{directory / 'serve.db'}"}

    def pomreport(*arguments: str) -> str:
        done = subprocess.run(
            [*POMREPORT, *arguments], env=environment, capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    return pomreport


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with _seeded_service(tmp_path_factory.mktemp("browser")) as service:
        yield service


@contextlib.contextmanager
def _seeded_service(directory: Path, environment: dict[str, str] | None = None) -> Iterator[Served]:
    """`pomreport serve` over 3,000 seeded callbacks in `directory`, with an operator key."""
    pomreport = _command_on(directory)
    pomreport("migrate")
    pomreport("seed", "--callbacks", "3000")
    operator_key = pomreport("apikey", "create", "--role", "operator", "--name", "browser test")
    with serving(directory, environment=environment) as process:
        yield Served(process, operator_key)


@pytest.fixture
def page(chromium: Browser, served: Served) -> Iterator[Page]:
    with _watched_page(chromium, served) as page:
        yield page


@contextlib.contextmanager
def _watched_page(chromium: Browser, served: Served) -> Iterator[Page]:
    """A page that may reach `served` only, and fails the test on any script or console error."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    local = served.process.base_url

    def only_local(route: Route) -> None:
        url = route.request.url
        if url.startswith((local, "data:", "ws://127.0.0.1")):
            route.continue_()
        else:
            served.outside_requests.append(url)
            route.abort()

    page.route("**/*", only_local)
    errors: list[str] = []

    def console(message: ConsoleMessage) -> None:
        # The first report request, before the key is given, is a 401 the page answers.
        if message.type == "error" and "401" not in message.text:
            errors.append(message.text)

    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", console)
    yield page
    context.close()
    assert errors == []
    assert served.outside_requests == []


def _screenshot(page: Page, name: str) -> None:
    folder = os.environ.get("POMREPORT_SCREENSHOT_DIR")
    if folder:
        page.screenshot(path=str(Path(folder) / name))


def _give_key(page: Page, served: Served) -> None:
    """The page asks for a key, since the service has keys; the key stays in the tab."""
    key_box = page.locator("#key-needed")
    expect(key_box).to_be_visible()
    key_box.locator("input").fill(served.operator_key)
    key_box.locator("button").click()
    expect(key_box).to_be_hidden()


def _screen_rows(page: Page) -> list[dict[str, str]]:
    rows = []
    for row in page.locator("#rows tbody tr[data-callback-id]").all():
        rows.append(
            {
                "callbackId": row.get_attribute("data-callback-id") or "",
                "status": row.locator("td[data-column=callbackStatus]").inner_text(),
            }
        )
    return rows


def test_graphiql_renders_and_runs_the_report_query(page: Page, served: Served) -> None:
    page.goto(f"{served.process.base_url}/graphql")
    # Without a key the schema cannot load; once one is typed, GraphiQL asks for it again.
    with page.expect_request(
        lambda request: (
            "IntrospectionQuery" in (request.post_data or "")
            and request.headers.get("authorization") == f"Bearer {served.operator_key}"
        )
    ):
        page.locator("#api-key").fill(served.operator_key)
    page.locator(".graphiql-execute-button").click()
    result = page.locator(".result-window")
    expect(result).to_contain_text('"totalRecords"', timeout=15_000)
    total = served.report_rows({"timePeriod": {"lastDays": 7}})[0]
    expect(result).to_contain_text(f'"totalRecords": {total}')
    _screenshot(page, "graphiql.png")


def test_report_page_shows_the_report_and_follows_changes(page: Page, served: Served) -> None:
    page.goto(served.process.base_url)
    _give_key(page, served)
    expect(page.locator("#total-records")).not_to_have_text("…")
    expect(page.locator("#live")).to_have_attribute("data-state", "on")
    _screenshot(page, "report-page.png")

    # A filter and a period, applied through the form: the rows and Total Records are the
    # GraphQL report's.
    # An agent with an ACTIVE callback in the period, to change on screen below.
    busiest = served.graphql(
        "{ callbacksScheduledDetails(timePeriod: {lastDays: 30}, filters: {callbackStatuses: "
        "[ACTIVE]}) { rows(first: 1) { edges { node { creatorAgentId } } } } }",
        {},
    )["callbacksScheduledDetails"]["rows"]["edges"][0]["node"]["creatorAgentId"]
    page.locator("select[name=mode]").select_option("lastDays")
    page.locator("input[name=lastDays]").fill("30")
    page.locator("input[name=timeZone]").fill("Europe/Berlin")
    page.locator("input[name=agentId]").fill(busiest)
    page.locator("select[name=pageSize]").select_option("500")
    page.get_by_role("button", name="Run report").click()
    variables = {
        "timePeriod": {"lastDays": 30, "timeZone": "Europe/Berlin"},
        "filters": {"agentId": busiest},
    }
    total, expected = served.report_rows(variables)
    expect(page.locator("#applied-filters")).to_have_text(f"Agent ID: {busiest}")
    expect(page.locator("#total-records")).to_have_text(f"{total:,}")
    screen = _screen_rows(page)
    assert [row["callbackId"] for row in screen] == [row["callbackId"] for row in expected]
    assert "30 Days" in page.locator("#time-period").inner_text()

    # A mutation elsewhere changes a row on screen within 2 s, without a reload.
    active = next(row for row in expected if row["callbackStatus"] == "ACTIVE")
    row = page.locator(f"#rows tr[data-callback-id='{active['callbackId']}']")
    expect(row.locator("td[data-column=callbackStatus]")).to_have_text("Active")
    served.graphql(COMPLETE, {"callbackId": active["callbackId"]})
    expect(row.locator("td[data-column=callbackStatus]")).to_have_text("Completed", timeout=2_000)
    expect(row.locator("td[data-column=customCompletionCode]")).to_have_text("Sold")

    # The CSV link downloads the same rows, in the same order.
    with page.expect_download() as download:
        page.locator("#csv-link").click()
    content = Path(download.value.path()).read_text(encoding="utf-8-sig")
    table = list(csv.DictReader(io.StringIO(content)))
    assert [line["Callback ID"] for line in table] == [row["callbackId"] for row in expected]
    assert len(table) == total


def test_report_page_notes_new_callbacks_and_pages(page: Page, served: Served) -> None:
    page.goto(f"{served.process.base_url}/?lastDays=7&pageSize=25")
    _give_key(page, served)
    total, expected = served.report_rows({"timePeriod": {"lastDays": 7}})
    assert total > 50
    first_page = [row["callbackId"] for row in expected[:25]]
    expect(page.locator("#rows tbody tr[data-callback-id]")).to_have_count(25)
    assert [row["callbackId"] for row in _screen_rows(page)] == first_page
    page.get_by_role("button", name="Next").click()
    expect(page.locator("#page-position")).to_have_text(f"Rows 26\u201350 of {total:,}")
    assert [row["callbackId"] for row in _screen_rows(page)] == [
        row["callbackId"] for row in expected[25:50]
    ]
    page.get_by_role("button", name="Previous").click()
    expect(page.locator("#page-position")).to_have_text(f"Rows 1\u201325 of {total:,}")
    assert [row["callbackId"] for row in _screen_rows(page)] == first_page
    expect(page.get_by_role("button", name="Next")).to_be_enabled()
    expect(page.get_by_role("button", name="Previous")).to_be_disabled()
    expect(page.locator("#live")).to_have_attribute("data-state", "on")

    job = served.graphql(
        "{ jobs(first: 1, filter: {state: {eq: ACTIVE}}) { edges { node { jobId "
        "campaign { name } } } } }",
        {},
    )["jobs"]["edges"][0]["node"]
    served.graphql(
        """mutation Schedule($jobId: Int!) {
          scheduleCallback(input: {callbackType: STANDARD, jobId: $jobId,
            creatorAgentId: "A1001", contactId: "C00000001", callId: "BROWSER-1",
            scheduledStartTime: "2099-01-01T09:00:00Z", scheduledEndTime: "2099-01-02T09:00:00Z"})
          { callbackId }
        }""",
        {"jobId": job["jobId"]},
    )
    note = page.locator("#new-callbacks")
    expect(note).to_contain_text("1 new callback scheduled in this period", timeout=2_000)
    note.get_by_role("button", name="Refresh").click()
    expect(page.locator("#total-records")).to_have_text(f"{total + 1:,}")


STATUS_COUNTS = """query Counts($timePeriod: TimePeriodInput) {
  callbacksScheduledSummary(timePeriod: $timePeriod, groupBy: [CALLBACK_STATUS]) {
    groups { callbackStatus count }
  }
}"""


def _chart(page: Page) -> dict[str, int]:
    """The status chart's counts, by status."""
    counts = {}
    for item in page.locator("#status-chart li").all():
        count = item.locator(".count").inner_text().replace(",", "")
        counts[item.get_attribute("data-status") or ""] = int(count)
    return counts


def test_report_page_charts_counts_by_status_and_follows_changes(
    page: Page, served: Served
) -> None:
    period = {"lastDays": 30}
    page.goto(f"{served.process.base_url}/?lastDays=30&pageSize=500")
    _give_key(page, served)
    expect(page.locator("#status-chart")).to_be_visible()
    groups = served.graphql(STATUS_COUNTS, {"timePeriod": period})["callbacksScheduledSummary"]
    summary = {group["callbackStatus"]: group["count"] for group in groups["groups"]}
    expected = {status: summary.get(status, 0) for status in STATUSES}
    expect(page.locator("#status-chart li")).to_have_count(len(STATUSES))
    assert _chart(page) == expected
    assert sum(expected.values()) == served.report_rows({"timePeriod": period})[0]
    expect(page.locator("#live")).to_have_attribute("data-state", "on")

    # A callback of the period completed elsewhere moves from Active to Completed, live.
    _total, rows = served.report_rows({"timePeriod": period})
    active = next(row for row in rows if row["callbackStatus"] == "ACTIVE")
    served.graphql(COMPLETE, {"callbackId": active["callbackId"]})
    completed = page.locator("#status-chart li[data-status=COMPLETED] .count")
    expect(completed).to_have_text(f"{expected['COMPLETED'] + 1:,}", timeout=2_000)
    expect(page.locator("#status-chart li[data-status=ACTIVE] .count")).to_have_text(
        f"{expected['ACTIVE'] - 1:,}"
    )


STATUSES = [
    "ACTIVE",
    "COMPLETED",
    "EXPIRED",
    "CAMPAIGN_TERMINATED",
    "OVERWRITTEN",
    "CONTACT_EXCLUDED",
]


def test_report_page_fits_a_phone_width_screen(chromium: Browser, served: Served) -> None:
    context = chromium.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.goto(served.process.base_url)
    _give_key(page, served)
    expect(page.locator("#total-records")).not_to_have_text("…")
    # The page itself does not scroll sideways; the table scrolls inside its frame.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    _screenshot(page, "report-page-phone.png")
    context.close()


def test_report_page_clears_a_report_its_new_view_could_not_run(page: Page, served: Served) -> None:
    page.goto(f"{served.process.base_url}/?lastDays=7")
    _give_key(page, served)
    expect(page.locator("#rows tbody tr[data-callback-id]").first).to_be_visible()
    page.locator("select[name=mode]").select_option("between")
    page.locator("input[name=from]").fill("2026-11-20T00:00")
    page.locator("input[name=to]").fill("2026-11-10T00:00")
    page.get_by_role("button", name="Run report").click()
    expect(page.locator("#error")).to_contain_text("from")
    expect(page.locator("#rows tbody tr")).to_have_count(0)
    expect(page.locator("#total-records")).to_have_text("\u2026")
    expect(page.get_by_role("button", name="Next")).to_be_disabled()


def test_report_page_asks_again_when_its_key_is_revoked(
    chromium: Browser, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A revoked key ends live updates with the key prompt, not endless reconnecting."""
    directory = tmp_path_factory.mktemp("revoked")
    pomreport = _command_on(directory)
    pomreport("migrate")
    pomreport("seed", "--callbacks", "300")
    key = pomreport("apikey", "create", "--role", "operator", "--name", "to revoke")
    other_key = pomreport("apikey", "create", "--role", "operator", "--name", "feeds events")
    with serving(directory, environment={"POMREPORT_API_KEY_CACHE_SECONDS": "0.2"}) as process:
        context = chromium.new_context()
        page = context.new_page()
        page.goto(f"{process.base_url}/?preset=ALL")
        _give_key(page, Served(process, key))
        expect(page.locator("#live")).to_have_attribute("data-state", "on")
        pomreport("apikey", "revoke", "1")
        # The next change the subscription would deliver finds the key revoked.
        expired = Served(process, other_key).graphql(
            'mutation { expireDueCallbacks(asOf: "2099-01-01T00:00:00Z") { changedCount } }', {}
        )
        assert expired["expireDueCallbacks"]["changedCount"] > 0
        expect(page.locator("#key-needed")).to_be_visible(timeout=10_000)
        expect(page.locator("#live")).to_have_attribute("data-state", "off")
        # The page shows the server's reason: the key was revoked (an expired one says so).
        expect(page.locator("#live")).to_contain_text("revoked")
        context.close()


# The report page's own documents and the README's example mutation: all the allow-list test
# sends, since the service it drives runs nothing else.
PAGE_DOCUMENTS = Path(__file__).parents[2] / "service" / "web" / "static" / "documents"
README_MUTATION = Path(__file__).parents[2] / "docs" / "queries" / "schedule-callback.graphql"


@pytest.fixture(scope="module")
def allow_listed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A seeded service in allow-list mode, with the manifest pomreport ships."""
    environment = {"POMREPORT_TRUSTED_DOCUMENTS": str(SHIPPED_MANIFEST)}
    with _seeded_service(tmp_path_factory.mktemp("allow-list"), environment) as service:
        yield service


def _document(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def test_report_page_works_in_allow_list_mode_with_the_shipped_manifest(
    chromium: Browser, allow_listed: Served
) -> None:
    served = allow_listed
    refused = httpx.post(
        f"{served.process.base_url}/graphql",
        json={"query": "{ callbacks(first: 1) { totalCount } }"},
        headers={"Authorization": f"Bearer {served.operator_key}"},
    )
    assert refused.status_code == 403  # anything but the manifest's documents
    variables: dict[str, Any] = {"timePeriod": {"lastDays": 7}, "filters": {}}

    def report() -> dict[str, Any]:
        document = _document(PAGE_DOCUMENTS / "ReportPage.graphql")
        page_of: dict[str, Any] = served.graphql(document, {**variables, "first": 500})
        return page_of["callbacksScheduledDetails"]  # type: ignore[no-any-return]

    def counts() -> dict[str, int]:
        document = _document(PAGE_DOCUMENTS / "ReportPageStatusCounts.graphql")
        groups = served.graphql(document, variables)["callbacksScheduledSummary"]["groups"]
        found = {group["callbackStatus"]: group["count"] for group in groups}
        return {status: found.get(status, 0) for status in STATUSES}

    with _watched_page(chromium, served) as page:
        page.goto(f"{served.process.base_url}/?lastDays=7&pageSize=500")
        _give_key(page, served)
        expected = report()
        assert 0 < expected["totalRecords"] < 500
        expect(page.locator("#total-records")).to_have_text(f"{expected['totalRecords']:,}")
        screen = [row["callbackId"] for row in _screen_rows(page)]
        assert screen == [edge["node"]["callbackId"] for edge in expected["rows"]["edges"]]
        expect(page.locator("#status-chart li")).to_have_count(len(STATUSES))
        assert _chart(page) == counts()
        expect(page.locator("#live")).to_have_attribute("data-state", "on")

        # The README's mutation schedules a callback: the page notes it, live.
        mutation = _document(README_MUTATION)
        first = served.graphql(mutation, {})["scheduleCallback"]["callbackId"]
        note = page.locator("#new-callbacks")
        expect(note).to_contain_text("1 new callback scheduled in this period", timeout=2_000)
        note.get_by_role("button", name="Refresh").click()
        expect(page.locator("#total-records")).to_have_text(f"{expected['totalRecords'] + 1:,}")
        row = page.locator(f"#rows tr[data-callback-id='{first}']")
        expect(row.locator("td[data-column=callbackStatus]")).to_have_text("Active")
        chart = counts()
        assert _chart(page) == chart

        # Sent again (same agent, contact and call), it overwrites that callback: its row and
        # the chart change without a reload.
        served.graphql(mutation, {})
        expect(row.locator("td[data-column=callbackStatus]")).to_have_text(
            "Overwritten", timeout=2_000
        )
        overwritten = page.locator("#status-chart li[data-status=OVERWRITTEN] .count")
        expect(overwritten).to_have_text(f"{chart['OVERWRITTEN'] + 1:,}", timeout=2_000)
        # One Active more (the new callback), one fewer (the overwritten one).
        active = page.locator("#status-chart li[data-status=ACTIVE] .count")
        expect(active).to_have_text(f"{chart['ACTIVE']:,}")
        assert _chart(page) == counts()

        # The CSV link's document is the manifest's too.
        with page.expect_download() as download:
            page.locator("#csv-link").click()
        content = Path(download.value.path()).read_text(encoding="utf-8-sig")
        assert len(list(csv.DictReader(io.StringIO(content)))) == expected["totalRecords"] + 2
