"""An agent key sees a contact only through the callbacks it may see, on both execution paths.

What the agent sees is checked against plain SQL written here, not through the service's own
rule: contacts with a callback the agent created, was assigned or serviced.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.engine import URL
from starlette.testclient import WebSocketTestSession

from service.graph.nodes import global_id
from tests.auth.test_authorization import (
    VISIBLE_TO_AGENT_SQL,
    SecuredService,
    schedule_as_operator,
    secured_service,
)
from tests.events.test_subscription import wait_for_subscribers

VISIBLE_CONTACTS_SQL = """
SELECT t.contact_id FROM contact t
WHERE EXISTS (SELECT 1 FROM callback c WHERE c.contact_id = t.contact_id
              AND (c.creator_agent_id = :agent OR c.created_for_agent_id = :agent
                   OR c.serviced_by_agent_id = :agent))
ORDER BY t.contact_id
"""

CONTACT_PAGES = """query($first: Int, $after: String, $orderBy: [ContactOrder!]) {
  contacts(first: $first, after: $after, orderBy: $orderBy) {
    totalCount edges { node { contactId phoneNumber email } }
    pageInfo { hasNextPage endCursor }
  }
}"""


@pytest.fixture(params=["compiled", "general"])
def agent_service(
    seeded_database_url: URL, request: pytest.FixtureRequest
) -> Iterator[SecuredService]:
    """The secured API with the agent's key in use, once on each execution path."""
    for service in secured_service(seeded_database_url, compiled=request.param == "compiled"):
        service.use("agent")
        yield service


def _visible_contacts(service: SecuredService) -> list[str]:
    return [row.contact_id for row in service.sql(VISIBLE_CONTACTS_SQL, agent=service.agent_id)]


def _hidden_contact(service: SecuredService) -> str:
    """A contact none of the agent's callbacks is for, that the service holds callbacks for."""
    visible = set(_visible_contacts(service))
    hidden: str = next(
        row.contact_id
        for row in service.sql("SELECT DISTINCT contact_id FROM callback ORDER BY contact_id")
        if row.contact_id not in visible
    )
    return hidden


@contextlib.contextmanager
def _on_its_path(service: SecuredService) -> Iterator[None]:
    """Assert that the requests inside ran on the path the service was started with: the
    compiled path answers each completely, never handing one to the general path."""
    compiled = service.api.client.app.state.compiled_queries  # type: ignore[attr-defined]
    answered, left = compiled.answered, compiled.left
    yield
    if service.api.compiled:
        assert compiled.answered > answered
        assert compiled.left == left
    else:
        assert compiled.answered == answered


def _all_contacts(service: SecuredService, order_by: list[dict[str, str]] | None) -> list[str]:
    """Follow the contacts' cursors to the end, four at a time; each page's totalCount must
    be the list's length."""
    ids: list[str] = []
    counts: set[int] = set()
    after = None
    while True:
        page = service.api.data(CONTACT_PAGES, {"first": 4, "after": after, "orderBy": order_by})
        contacts = page["contacts"]
        counts.add(contacts["totalCount"])
        ids.extend(edge["node"]["contactId"] for edge in contacts["edges"])
        if not contacts["pageInfo"]["hasNextPage"]:
            assert counts == {len(ids)}
            return ids
        after = contacts["pageInfo"]["endCursor"]


def test_an_agent_lists_and_counts_exactly_the_contacts_of_its_callbacks(
    agent_service: SecuredService,
) -> None:
    visible = _visible_contacts(agent_service)
    # The agent reaches a few contacts, not the seeded 300.
    assert 5 < len(visible) < 100
    with _on_its_path(agent_service):
        assert _all_contacts(agent_service, None) == visible
        by_name = _all_contacts(agent_service, [{"field": "LAST_NAME", "direction": "DESC"}])
        assert sorted(by_name) == visible
        # A filter cannot widen the scope.
        widened = agent_service.api.data(
            '{ contacts(first: 500, filter: {or: [{contactId: {ne: ""}}, {email: '
            "{isNull: true}}]}) { totalCount edges { node { contactId } } } }"
        )["contacts"]
    assert widened["totalCount"] == len(visible)
    assert [edge["node"]["contactId"] for edge in widened["edges"]] == visible


def test_an_agent_gets_null_for_a_contact_outside_its_callbacks(
    agent_service: SecuredService,
) -> None:
    hidden = _hidden_contact(agent_service)
    own = _visible_contacts(agent_service)[0]
    lookup = """query($node: ID!, $contactId: String!) {
      node(id: $node) { id ... on Contact { phoneNumber } }
      contact(contactId: $contactId) { contactId email callbacks { totalCount } }
    }"""

    def look(contact_id: str) -> dict[str, Any]:
        return agent_service.api.data(
            lookup, {"node": global_id("Contact", contact_id), "contactId": contact_id}
        )

    with _on_its_path(agent_service):
        assert look(hidden) == {"node": None, "contact": None}
        seen = look(own)
    assert seen["node"]["id"] == global_id("Contact", own)
    assert seen["contact"]["contactId"] == own
    assert seen["contact"]["callbacks"]["totalCount"] > 0
    agent_service.use("viewer")
    assert look(hidden)["contact"]["contactId"] == hidden


def test_the_contact_of_every_callback_an_agent_sees_stays_visible_through_it(
    agent_service: SecuredService,
) -> None:
    callbacks = agent_service.sql(VISIBLE_TO_AGENT_SQL, agent=agent_service.agent_id)
    expected = {row.callback_id: row.contact_id for row in callbacks}
    nested = """{
      callbacks(first: 500) {
        totalCount edges { node { callbackId contact { contactId phoneNumber } } }
      }
      callbacksScheduledDetails(timePeriod: {preset: ALL}) {
        totalRecords rows(first: 500) { edges { node { callbackId contact { contactId } } } }
      }
      byContact: callbacks(filter: {contact: {contactId: {ne: ""}}}) { totalCount }
    }"""
    statements: dict[str, int] = {}
    for role in ("viewer", "agent"):
        agent_service.use(role)
        agent_service.api.data(nested)  # the key's first use looks it up; then it is trusted
        with _on_its_path(agent_service):
            data = agent_service.api.data(nested)
        statements[role] = len(agent_service.api.statements)
    # The scope adds no statement: no contact is fetched on its own.
    assert statements["agent"] == statements["viewer"]
    listed = {
        edge["node"]["callbackId"]: edge["node"]["contact"]["contactId"]
        for edge in data["callbacks"]["edges"]
    }
    assert listed == expected
    assert all(edge["node"]["contact"]["phoneNumber"] for edge in data["callbacks"]["edges"])
    report = data["callbacksScheduledDetails"]
    assert report["totalRecords"] == len(expected)
    assert {
        edge["node"]["callbackId"]: edge["node"]["contact"]["contactId"]
        for edge in report["rows"]["edges"]
    } == expected
    # Filtering callbacks by their contact hides none of the agent's.
    assert data["byContact"]["totalCount"] == len(expected)


SUBSCRIPTION = """subscription { callbackStatusChanged {
  status callback { callbackId contact { contactId phoneNumber callbacks { totalCount } } }
} }"""


def test_an_agent_subscriber_gets_the_contact_of_its_new_callback(
    agent_service: SecuredService,
) -> None:
    # A contact the agent could not see until a callback for it is assigned to the agent.
    contact_id = _hidden_contact(agent_service)
    other = agent_service.sql(
        "SELECT agent_id FROM agent WHERE agent_id <> :agent ORDER BY agent_id LIMIT 1",
        agent=agent_service.agent_id,
    )[0][0]
    with agent_service.api.client.websocket_connect(
        "/graphql", subprotocols=["graphql-transport-ws"]
    ) as websocket:
        _subscribe(websocket, agent_service.keys["agent"])
        wait_for_subscribers(agent_service.api, 1)
        schedule_as_operator(
            agent_service,
            "CONTACT-SCOPE-1",
            creator=other,
            created_for=agent_service.agent_id,
            contact_id=contact_id,
        )
        message = websocket.receive_json()
    assert "errors" not in message["payload"], message
    callback = message["payload"]["data"]["callbackStatusChanged"]["callback"]
    assert callback["callbackId"] == "CONTACT-SCOPE-1"
    assert callback["contact"]["contactId"] == contact_id
    assert callback["contact"]["phoneNumber"]
    # The new callback is the one of the contact's callbacks the agent sees.
    assert callback["contact"]["callbacks"]["totalCount"] == 1
    agent_service.use("agent")
    found = agent_service.api.data(
        "query($id: String!) { contact(contactId: $id) { contactId } }", {"id": contact_id}
    )
    assert found["contact"] == {"contactId": contact_id}


def _subscribe(websocket: WebSocketTestSession, key: str) -> None:
    websocket.send_json({"type": "connection_init", "payload": {"Authorization": f"Bearer {key}"}})
    assert websocket.receive_json()["type"] == "connection_ack"
    websocket.send_json({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIPTION}})
