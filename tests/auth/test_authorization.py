"""Who may do what: the authorization matrix over every root field, and agent-scoped rows.

Agent scope is checked against an independent SQL filter written here in plain SQL, not
through the service's own rule.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.testclient import WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

from service.auth.api_keys import create_api_key
from service.db.models.api_key import Role
from service.graph.nodes import global_id
from service.settings import Settings
from tests.events.test_subscription import wait_for_subscribers
from tests.graphql_client import GraphQLClient, on_database, serve_graphql

ROLES = ("no key", "viewer", "agent", "operator", "admin")

VISIBLE_TO_AGENT_SQL = """
SELECT callback_id, campaign_id, job_id, creator_agent_id, serviced_by_agent_id, contact_id
FROM callback
WHERE creator_agent_id = :agent OR created_for_agent_id = :agent OR serviced_by_agent_id = :agent
"""


@dataclass
class SecuredService:
    """The API over seeded data with keys required, and one key per role."""

    api: GraphQLClient
    database_url: URL
    keys: dict[str, str]
    agent_id: str

    def use(self, role: str) -> None:
        """Send later requests with `role`'s key ("no key": none)."""
        key = self.keys.get(role)
        self.api.headers = {"Authorization": f"Bearer {key}"} if key else {}

    def sql(self, statement: str, **parameters: Any) -> list[Any]:
        """Rows of a plain SQL statement, straight from the database."""

        async def rows(sessions: async_sessionmaker[AsyncSession]) -> list[Any]:
            async with sessions() as session:
                return list((await session.execute(text(statement), parameters)).all())

        return on_database(self.database_url, rows)


async def _issue_keys(sessions: async_sessionmaker[AsyncSession], agent_id: str) -> dict[str, str]:
    keys = {}
    for role in (Role.VIEWER, Role.AGENT, Role.OPERATOR, Role.ADMIN):
        agent = agent_id if role is Role.AGENT else None
        _row, keys[role.value] = await create_api_key(sessions, role, agent_id=agent)
    return keys


@pytest.fixture
def secured(seeded_database_url: URL) -> Iterator[SecuredService]:
    yield from secured_service(seeded_database_url, compiled=True)


def secured_service(database_url: URL, *, compiled: bool) -> Iterator[SecuredService]:
    """The API over seeded data at `database_url` with keys required, on the compiled path
    or the general one, and the agent whose key it issues."""
    settings = Settings(
        database_url=database_url,
        max_page_size=500,
        expiry_sweep_seconds=0,
        compiled_execution=compiled,
    )
    with contextlib.contextmanager(serve_graphql)(settings) as api:
        service = SecuredService(api, database_url, {}, "")
        # The agent seen through all three paths: created, assigned to, serviced.
        service.agent_id = service.sql(
            """SELECT a.agent_id FROM agent a
               WHERE EXISTS (SELECT 1 FROM callback c WHERE c.created_for_agent_id = a.agent_id
                             AND c.creator_agent_id <> a.agent_id)
                 AND EXISTS (SELECT 1 FROM callback c WHERE c.serviced_by_agent_id = a.agent_id
                             AND c.creator_agent_id <> a.agent_id
                             AND COALESCE(c.created_for_agent_id, '') <> a.agent_id)
               ORDER BY a.agent_id LIMIT 1"""
        )[0][0]
        service.keys = on_database(
            database_url, lambda sessions: _issue_keys(sessions, service.agent_id)
        )
        yield service


# One document per root query field; each must answer every role that may read.
ROOT_QUERIES = {
    "callbacksScheduledDetails": "{ callbacksScheduledDetails(timePeriod: {preset: ALL}) "
    "{ totalRecords rows(first: 3) { edges { node { callbackId } } } } }",
    "callbacksScheduledSummary": "{ callbacksScheduledSummary(timePeriod: {preset: ALL}, "
    "groupBy: [CALLBACK_STATUS]) { totalRecords groups { callbackStatus count } } }",
    "node": f'{{ node(id: "{global_id("Agent", "A1001")}") {{ id }} }}',
    "campaign": "{ campaigns(first: 1) { edges { node { name } } } }",
    "job": "{ job(jobId: 1001) { jobId } }",
    "agent": '{ agent(agentId: "A1001") { agentId } }',
    "contact": '{ contact(contactId: "C00000001") { contactId } }',
    "callback": '{ callback(callbackId: "none") { callbackId } }',
    "campaigns": "{ campaigns(first: 2) { totalCount edges { node { name } } } }",
    "jobs": "{ jobs(first: 2) { totalCount edges { node { jobId } } } }",
    "agents": "{ agents(first: 2) { totalCount edges { node { agentId } } } }",
    "contacts": "{ contacts(first: 2) { totalCount edges { node { contactId } } } }",
    "callbacks": "{ callbacks(first: 2) { totalCount edges { node { callbackId } } } }",
}


def _mutations(suffix: str, job_id: int) -> dict[str, str]:
    """One valid document per mutation, in an order in which each one succeeds."""
    start = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    end = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=3)).isoformat()
    campaign = f"Matrix {suffix}"
    return {
        "upsertCampaign": f'mutation {{ upsertCampaign(input: {{name: "{campaign}", '
        'campaignType: FINITE, strategy: "S", maxAttempts: 2}) { name } }',
        "upsertAgent": f'mutation {{ upsertAgent(input: {{agentId: "AG-{suffix}", '
        'name: "Matrix agent"}) { agentId } }',
        "upsertContact": f'mutation {{ upsertContact(input: {{contactId: "CT-{suffix}", '
        'firstName: "M", lastName: "X", phone: "+1 555 0199", timeZone: "UTC"}) { contactId } }',
        "startJob": f'mutation {{ startJob(input: {{jobId: {job_id}, campaignName: "{campaign}"}}) '
        "{ jobId } }",
        "scheduleCallback": f'mutation {{ scheduleCallback(input: {{callbackId: "CB-{suffix}", '
        f'callbackType: CAMPAIGN, jobId: {job_id}, creatorAgentId: "AG-{suffix}", '
        f'contactId: "CT-{suffix}", callId: "CALL-{suffix}", scheduledStartTime: "{start}", '
        f'scheduledEndTime: "{end}"}}) {{ callbackId }} }}',
        "recordCallbackAttempt": "mutation { recordCallbackAttempt(input: "
        f'{{callbackId: "CB-{suffix}", agentId: "AG-{suffix}", customCompletionCode: "Busy"}}) '
        "{ callbackId } }",
        "postponeCallback": f'mutation {{ postponeCallback(input: {{callbackId: "CB-{suffix}", '
        f'scheduledStartTime: "{start}", scheduledEndTime: "{end}"}}) {{ callbackId }} }}',
        "expireDueCallbacks": 'mutation { expireDueCallbacks(asOf: "2000-01-01T00:00:00Z") '
        "{ changedCount } }",
        "excludeContact": f'mutation {{ excludeContact(contactId: "CT-{suffix}") '
        "{ changedCount } }",
        "terminateCampaign": f'mutation {{ terminateCampaign(name: "{campaign}") '
        "{ changedCount } }",
    }


SUBSCRIPTION = "subscription { callbackStatusChanged { status callback { callbackId } } }"


def _outcome(status: int, body: dict[str, Any]) -> str:
    """`ok`, or the HTTP status and the error code."""
    if status == 200 and not body.get("errors") and body.get("data"):
        return "ok"
    codes = sorted({error["extensions"]["code"] for error in body.get("errors", [])})
    return f"{status} {','.join(codes)}"


def _table_counts(service: SecuredService) -> list[Any]:
    return service.sql(
        "SELECT (SELECT count(*) FROM campaign), (SELECT count(*) FROM agent), "
        "(SELECT count(*) FROM contact), (SELECT count(*) FROM job), "
        "(SELECT count(*) FROM callback), (SELECT count(*) FROM callback_attempt), "
        "(SELECT count(*) FROM callback WHERE status = 'ACTIVE')"
    )


def _subscribe_outcome(service: SecuredService, role: str, protocol: str) -> str:
    """Subscribe with `role`'s key in connection_init; `ok` once a change arrives."""
    key = service.keys.get(role)
    payload = {"Authorization": f"Bearer {key}"} if key else {}
    with service.api.client.websocket_connect("/graphql", subprotocols=[protocol]) as websocket:
        websocket.send_json({"type": "connection_init", "payload": payload})
        try:
            reply = websocket.receive_json()
        except WebSocketDisconnect as closed:
            return f"closed {closed.code}"
        if reply["type"] != "connection_ack":
            return f"{reply['type']} {reply.get('payload', {}).get('extensions', {}).get('code')}"
        start = "subscribe" if protocol == "graphql-transport-ws" else "start"
        websocket.send_json({"id": "1", "type": start, "payload": {"query": SUBSCRIPTION}})
        wait_for_subscribers(service.api, 1)
        schedule_as_operator(service, f"SUB-{role}-{protocol}", creator=service.agent_id)
        message = websocket.receive_json()
        websocket.send_json({"id": "1", "type": "complete" if start == "subscribe" else "stop"})
        status = message["payload"]["data"]["callbackStatusChanged"]["status"]
        return "ok" if status == "ACTIVE" else str(message)


def schedule_as_operator(
    service: SecuredService,
    callback_id: str,
    *,
    creator: str,
    created_for: str | None = None,
    contact_id: str | None = None,
) -> None:
    """Schedule a callback with the operator's key, in a running job, for `contact_id` (by
    default the first contact not excluded)."""
    job_id, first_contact_id = service.sql(
        """SELECT j.job_id, t.contact_id FROM job j JOIN campaign c ON c.id = j.campaign_id,
                  contact t
           WHERE c.state = 'RUNNING' AND j.state <> 'COMPLETED' AND t.excluded_at IS NULL
           ORDER BY j.job_id, t.contact_id LIMIT 1"""
    )[0]
    contact_id = contact_id or first_contact_id
    start = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    saved = service.api.headers
    service.use("operator")
    try:
        service.api.data(
            "mutation($input: ScheduleCallbackInput!) "
            "{ scheduleCallback(input: $input) { callbackId } }",
            {
                "input": {
                    "callbackId": callback_id,
                    "callbackType": "STRICT_AGENT" if created_for else "CAMPAIGN",
                    "jobId": job_id,
                    "creatorAgentId": creator,
                    "createdForAgentId": created_for,
                    "contactId": contact_id,
                    "callId": f"CALL-{callback_id}",
                    "scheduledStartTime": start.isoformat(),
                    "scheduledEndTime": (start + dt.timedelta(hours=2)).isoformat(),
                }
            },
        )
    finally:
        service.api.headers = saved


def test_authorization_matrix(secured: SecuredService) -> None:
    outcomes: dict[tuple[str, str], str] = {}
    expected: dict[tuple[str, str], str] = {}
    for role in ROLES:
        secured.use(role)
        for field, query in ROOT_QUERIES.items():
            response = secured.api.post(query)
            outcomes[field, role] = _outcome(response.status_code, response.json())
            expected[field, role] = "401 UNAUTHENTICATED" if role == "no key" else "ok"

    for job_id, role in enumerate(ROLES, start=900_001):
        before = _table_counts(secured)
        secured.use(role)
        for field, mutation in _mutations(role.replace(" ", "-"), job_id).items():
            response = secured.api.post(mutation)
            outcomes[field, role] = _outcome(response.status_code, response.json())
            expected[field, role] = {
                "no key": "401 UNAUTHENTICATED",
                "viewer": "403 FORBIDDEN",
                "agent": "403 FORBIDDEN",
            }.get(role, "ok")
        if role in ("no key", "viewer", "agent"):
            assert _table_counts(secured) == before, f"a refused {role} mutation changed rows"

    for role in ROLES:
        for protocol in ("graphql-transport-ws", "graphql-ws"):
            outcomes[f"callbackStatusChanged {protocol}", role] = _subscribe_outcome(
                secured, role, protocol
            )
            expected[f"callbackStatusChanged {protocol}", role] = (
                "ok"
                if role != "no key"
                else ("closed 4403" if protocol == "graphql-transport-ws" else "connection_error")
                + ("" if protocol == "graphql-transport-ws" else " UNAUTHENTICATED")
            )

    assert outcomes == expected


def test_a_wrong_revoked_or_malformed_key_is_unauthenticated(secured: SecuredService) -> None:
    query = ROOT_QUERIES["agents"]
    for authorization in ("Bearer pomr_not-a-key", "Basic dXNlcjpwYXNz", "Bearer", "pomr_x"):
        secured.api.headers = {"Authorization": authorization}
        response = secured.api.post(query)
        assert response.status_code == 401, authorization
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    # GraphiQL's page holds no data and opens without a key.
    secured.api.headers = {}
    page = secured.api.client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "graphiql" in page.text.lower()


def test_a_websocket_may_authenticate_with_the_upgrade_header(secured: SecuredService) -> None:
    headers = {"Authorization": f"Bearer {secured.keys['viewer']}"}
    with secured.api.client.websocket_connect(
        "/graphql", subprotocols=["graphql-transport-ws"], headers=headers
    ) as websocket:
        websocket.send_json({"type": "connection_init"})
        assert websocket.receive_json()["type"] == "connection_ack"
    bad = {"Authorization": "Bearer pomr_wrong"}
    with (
        pytest.raises(WebSocketDisconnect),
        secured.api.client.websocket_connect(
            "/graphql", subprotocols=["graphql-transport-ws"], headers=bad
        ) as websocket,
    ):
        websocket.receive_json()


def _visible(secured: SecuredService) -> list[Any]:
    return secured.sql(VISIBLE_TO_AGENT_SQL, agent=secured.agent_id)


def _all_pages(api: GraphQLClient, query: str, path: list[str], page_size: int) -> list[str]:
    """Follow a connection's cursors to the end; the callback IDs in order."""
    ids: list[str] = []
    after = None
    while True:
        data = api.data(query, {"first": page_size, "after": after})
        for key in path:
            data = data[key]
        ids.extend(edge["node"]["callbackId"] for edge in data["edges"])
        if not data["pageInfo"]["hasNextPage"]:
            return ids
        after = data["pageInfo"]["endCursor"]


def test_an_agent_sees_exactly_its_own_callbacks_at_the_root_and_in_the_report(
    secured: SecuredService,
) -> None:
    visible = _visible(secured)
    # Created, assigned and serviced each contribute rows the others do not.
    assert 10 < len(visible) < 200
    visible_ids = sorted(row.callback_id for row in visible)
    secured.use("agent")

    listing = "query($first: Int, $after: String) { callbacks(first: $first, after: $after) "
    listing += "{ totalCount edges { node { callbackId } } pageInfo { hasNextPage endCursor } } }"
    assert sorted(_all_pages(secured.api, listing, ["callbacks"], 7)) == visible_ids
    assert secured.api.data(listing, {"first": 1})["callbacks"]["totalCount"] == len(visible)

    report = (
        "query($first: Int, $after: String) { callbacksScheduledDetails(timePeriod: "
        "{preset: ALL}) { totalRecords rows(first: $first, after: $after) { edges { node "
        "{ callbackId } } pageInfo { hasNextPage endCursor } } } }"
    )
    assert sorted(_all_pages(secured.api, report, ["callbacksScheduledDetails", "rows"], 9)) == (
        visible_ids
    )
    totals = secured.api.data(report, {"first": 1})["callbacksScheduledDetails"]
    assert totals["totalRecords"] == len(visible)

    # A filter cannot widen the scope: another agent's callbacks show only where ours.
    other = next(
        row.creator_agent_id for row in visible if row.creator_agent_id != secured.agent_id
    )
    escaped = secured.api.data(
        "query($other: String!) { callbacks(first: 500, filter: {or: [{creatorAgentId: "
        '{eq: $other}}, {callbackId: {ne: ""}}]}) { totalCount edges { node { callbackId } } } }',
        {"other": other},
    )["callbacks"]
    assert escaped["totalCount"] == len(visible)
    assert sorted(edge["node"]["callbackId"] for edge in escaped["edges"]) == visible_ids


CALLBACK_PAGE = "{ totalCount edges { node { callbackId } } }"
NESTED = {
    "campaigns": "{ campaigns(first: 100) { edges { node { id callbacks(first: 100) %s } } } }",
    "jobs": "{ jobs(first: 250) { edges { node { id callbacks(first: 20) %s } } } }",
    "agents": "{ agents(first: 100) { edges { node { id createdCallbacks(first: 50) %s "
    "servicedCallbacks(first: 50) %s } } } }",
    "contacts": "{ contacts(first: 300) { edges { node { id callbacks(first: 20) %s } } } }",
}


def test_every_nested_connection_and_count_obeys_the_agent_scope(
    secured: SecuredService,
) -> None:
    visible = _visible(secured)
    campaign_ids = dict(secured.sql("SELECT id, name FROM campaign"))
    expected: dict[tuple[str, str], set[str]] = {}
    for row in visible:
        parents = [
            ("campaigns", global_id("Campaign", campaign_ids[row.campaign_id]), "callbacks"),
            ("jobs", global_id("Job", row.job_id), "callbacks"),
            ("agents", global_id("Agent", row.creator_agent_id), "createdCallbacks"),
            ("contacts", global_id("Contact", row.contact_id), "callbacks"),
        ]
        if row.serviced_by_agent_id:
            parents.append(
                ("agents", global_id("Agent", row.serviced_by_agent_id), "servicedCallbacks")
            )
        for _root, parent_id, connection in parents:
            expected.setdefault((parent_id, connection), set()).add(row.callback_id)

    secured.use("agent")
    seen: dict[tuple[str, str], set[str]] = {}
    parents_seen = 0
    for root, query in NESTED.items():
        data = secured.api.data(query.replace("%s", CALLBACK_PAGE))
        for edge in data[root]["edges"]:
            parents_seen += 1
            node = edge["node"]
            for connection in ("callbacks", "createdCallbacks", "servicedCallbacks"):
                if connection not in node:
                    continue
                page = node[connection]
                ids = {item["node"]["callbackId"] for item in page["edges"]}
                assert page["totalCount"] == len(ids), (node["id"], connection)
                if ids:
                    seen[node["id"], connection] = ids
    # Every campaign, job and agent; of the contacts, those of the agent's callbacks.
    assert parents_seen == 24 + 202 + 100 + len({row.contact_id for row in visible})
    assert seen == expected


def test_an_agent_gets_null_for_another_agents_callback_and_its_attempts(
    secured: SecuredService,
) -> None:
    hidden_callback, hidden_attempt = secured.sql(
        """SELECT c.callback_id, a.id FROM callback c JOIN callback_attempt a
           ON a.callback_id = c.callback_id
           WHERE c.creator_agent_id <> :agent AND COALESCE(c.created_for_agent_id, '') <> :agent
             AND COALESCE(c.serviced_by_agent_id, '') <> :agent
           ORDER BY c.callback_id LIMIT 1""",
        agent=secured.agent_id,
    )[0]
    own_callback, own_attempt = secured.sql(
        """SELECT c.callback_id, a.id FROM callback c JOIN callback_attempt a
           ON a.callback_id = c.callback_id
           WHERE c.creator_agent_id = :agent ORDER BY c.callback_id LIMIT 1""",
        agent=secured.agent_id,
    )[0]
    lookup = """query($node: ID!, $attempt: ID!, $callbackId: String!) {
      node(id: $node) { id }
      attempt: node(id: $attempt) { id }
      callback(callbackId: $callbackId) { callbackId attempts { attemptTime } }
    }"""

    def look(callback_id: str, attempt_id: int) -> dict[str, Any]:
        return secured.api.data(
            lookup,
            {
                "node": global_id("Callback", callback_id),
                "attempt": global_id("CallbackAttempt", attempt_id),
                "callbackId": callback_id,
            },
        )

    secured.use("agent")
    assert look(hidden_callback, hidden_attempt) == {
        "node": None,
        "attempt": None,
        "callback": None,
    }
    own = look(own_callback, own_attempt)
    assert own["node"] is not None
    assert own["attempt"] is not None
    assert own["callback"]["attempts"]
    secured.use("viewer")
    assert look(hidden_callback, hidden_attempt)["callback"]["callbackId"] == hidden_callback


def test_the_agent_scope_adds_no_statement(secured: SecuredService) -> None:
    report_page = """{ callbacksScheduledDetails(timePeriod: {preset: ALL}) {
      totalRecords rows(first: 100) { edges { node {
        callbackId campaignDisplayName createdFor
        job { jobId } creatorAgent { name } contact { lastName } attempts { attemptTime }
      } } } } }"""
    counts = {}
    for role in ("viewer", "agent"):
        secured.use(role)
        secured.api.data(report_page)
        # The key's first use looks it up; it is then trusted for a while (no statement).
        key_lookups = [s for s in secured.api.statements if "FROM api_key" in s]
        assert len(key_lookups) == 1
        secured.api.data(report_page)
        counts[role] = len(secured.api.statements)
    # Page (every to-one relation joined), attempts, count: on the compiled path.
    expected = secured.api.report_statements
    assert counts == {"viewer": expected, "agent": expected}


def test_a_plan_made_for_one_caller_answers_each_caller_within_its_own_rights(
    secured: SecuredService,
) -> None:
    # The viewer's request plans the document; later requests of it take the compiled path's
    # endpoint, which must apply each caller's scope and refuse who may not read.
    report_page = """{ callbacksScheduledDetails(timePeriod: {preset: ALL}) {
      totalRecords rows(first: 500) { edges { node { callbackId attempts { attemptTime } } } }
    } }"""
    app: Any = secured.api.client.app
    secured.use("viewer")
    everything = secured.api.data(report_page)["callbacksScheduledDetails"]
    secured.use("agent")
    own = secured.api.data(report_page)["callbacksScheduledDetails"]
    assert app.state.compiled_queries.answered_directly == 1
    visible = {row[0] for row in secured.sql(VISIBLE_TO_AGENT_SQL, agent=secured.agent_id)}
    assert own["totalRecords"] == len(visible) < everything["totalRecords"]
    assert {edge["node"]["callbackId"] for edge in own["rows"]["edges"]} <= visible
    secured.use("no key")
    response = secured.api.post(report_page)
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert app.state.compiled_queries.answered_directly == 1


def test_an_agent_subscriber_receives_only_changes_to_its_callbacks(
    secured: SecuredService,
) -> None:
    other = secured.sql(
        "SELECT agent_id FROM agent WHERE agent_id <> :agent ORDER BY agent_id LIMIT 1",
        agent=secured.agent_id,
    )[0][0]
    received: dict[str, list[str]] = {}
    with contextlib.ExitStack() as stack:
        sockets: dict[str, WebSocketTestSession] = {}
        for role in ("agent", "viewer"):
            websocket = stack.enter_context(
                secured.api.client.websocket_connect(
                    "/graphql", subprotocols=["graphql-transport-ws"]
                )
            )
            websocket.send_json(
                {
                    "type": "connection_init",
                    "payload": {"Authorization": f"Bearer {secured.keys[role]}"},
                }
            )
            assert websocket.receive_json()["type"] == "connection_ack"
            websocket.send_json(
                {"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIPTION}}
            )
            sockets[role] = websocket
        wait_for_subscribers(secured.api, 2)
        schedule_as_operator(secured, "HIDDEN-1", creator=other)
        schedule_as_operator(secured, "ASSIGNED-1", creator=other, created_for=secured.agent_id)
        for role, count in (("agent", 1), ("viewer", 2)):
            received[role] = [
                sockets[role].receive_json()["payload"]["data"]["callbackStatusChanged"][
                    "callback"
                ]["callbackId"]
                for _ in range(count)
            ]
    assert received == {"agent": ["ASSIGNED-1"], "viewer": ["HIDDEN-1", "ASSIGNED-1"]}


NESTED_SUBSCRIPTION = """subscription { callbackStatusChanged { callback {
  callbackId contact { contactId callbacks { totalCount } }
} } }"""


def test_subscribers_share_an_execution_only_within_one_row_scope(
    secured: SecuredService,
) -> None:
    # An agent and a viewer with one document: the nested connection counts the contact's
    # callbacks each may see, so a result shared across scopes would show in the agent's.
    payloads: dict[str, dict[str, Any]] = {}
    with contextlib.ExitStack() as stack:
        sockets: dict[str, WebSocketTestSession] = {}
        for role in ("viewer", "agent", "viewer-2"):
            websocket = stack.enter_context(
                secured.api.client.websocket_connect(
                    "/graphql", subprotocols=["graphql-transport-ws"]
                )
            )
            key = secured.keys[role.removesuffix("-2")]
            websocket.send_json(
                {"type": "connection_init", "payload": {"Authorization": f"Bearer {key}"}}
            )
            assert websocket.receive_json()["type"] == "connection_ack"
            websocket.send_json(
                {"id": "1", "type": "subscribe", "payload": {"query": NESTED_SUBSCRIPTION}}
            )
            sockets[role] = websocket
        wait_for_subscribers(secured.api, 3)
        schedule_as_operator(
            secured, "ASSIGNED-2", creator=secured.agent_id, created_for=secured.agent_id
        )
        for role, websocket in sockets.items():
            change = websocket.receive_json()["payload"]["data"]["callbackStatusChanged"]
            payloads[role] = change["callback"]
    contact_id = payloads["agent"]["contact"]["contactId"]
    seen = {}
    for role in ("agent", "viewer"):
        secured.use(role)
        seen[role] = secured.api.data(
            "query($id: String!) { contact(contactId: $id) { callbacks { totalCount } } }",
            {"id": contact_id},
        )["contact"]["callbacks"]["totalCount"]
    assert seen["agent"] < seen["viewer"]
    assert payloads["agent"]["contact"]["callbacks"]["totalCount"] == seen["agent"]
    assert payloads["viewer"]["contact"]["callbacks"]["totalCount"] == seen["viewer"]
    assert payloads["viewer-2"] == payloads["viewer"]
