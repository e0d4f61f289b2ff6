from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import URL

from service.db.engines import create_engine, create_session_maker
from service.db.models import Callback, Contact
from tests.graphql_client import GraphQLClient

CALLBACK_PAGE = """
query Page($filter: CallbackFilter, $orderBy: [CallbackOrder!], $first: Int, $after: String,
           $last: Int, $before: String) {
  callbacks(filter: $filter, orderBy: $orderBy, first: $first, after: $after, last: $last,
            before: $before) {
    totalCount
    edges { cursor node { callbackId } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""


def _all_rows(url: URL) -> tuple[list[Callback], dict[str, Contact]]:
    async def load() -> tuple[list[Callback], dict[str, Contact]]:
        engine = create_engine(url)
        try:
            async with create_session_maker(engine)() as session:
                callbacks = list(await session.scalars(select(Callback)))
                contacts = {c.contact_id: c for c in await session.scalars(select(Contact))}
        finally:
            await engine.dispose()
        return callbacks, contacts

    return asyncio.run(load())


def _page_through(
    graphql: GraphQLClient, variables: dict[str, Any], size: int, *, backward: bool = False
) -> tuple[list[str], int]:
    """Every callback ID over all pages, in order, and the reported totalCount."""
    seen: list[str] = []
    cursor: str | None = None
    total = -1
    while True:
        page_variables = dict(variables)
        if backward:
            page_variables.update(last=size, before=cursor)
        else:
            page_variables.update(first=size, after=cursor)
        connection = graphql.data(CALLBACK_PAGE, page_variables)["callbacks"]
        total = connection["totalCount"]
        ids = [edge["node"]["callbackId"] for edge in connection["edges"]]
        seen = ids + seen if backward else seen + ids
        info = connection["pageInfo"]
        more = info["hasPreviousPage"] if backward else info["hasNextPage"]
        if not more:
            return seen, total
        cursor = info["startCursor"] if backward else info["endCursor"]


AS_OF_WEEK = dt.datetime(2026, 11, 22, tzinfo=dt.UTC)

# (filter, orderBy, oracle predicate, oracle sort key)
CASES: list[
    tuple[
        dict[str, Any] | None,
        list[dict[str, str]] | None,
        Callable[..., bool],
        Callable[[Callback], Any],
    ]
] = [
    (None, None, lambda c, _: True, lambda c: (c.created_at, c.callback_id)),
    (
        {"callbackStatus": {"in": ["ACTIVE", "EXPIRED"]}},
        [{"field": "SCHEDULED_END_TIME", "direction": "DESC"}],
        lambda c, _: c.status.name in ("ACTIVE", "EXPIRED"),
        lambda c: (-c.scheduled_end_at.timestamp(), c.callback_id),
    ),
    (
        {"creationTime": {"gte": AS_OF_WEEK.isoformat()}, "servicedByAgentId": {"isNull": False}},
        [{"field": "CREATOR_AGENT_ID"}, {"field": "CREATION_TIME", "direction": "DESC"}],
        lambda c, _: c.created_at >= AS_OF_WEEK and c.serviced_by_agent_id is not None,
        lambda c: (c.creator_agent_id, -c.created_at.timestamp(), c.callback_id),
    ),
    (
        {"not": {"servicedByAgentId": {"eq": "A1005"}}, "callbackType": {"ne": "STANDARD"}},
        [{"field": "CALLBACK_STATUS"}],
        lambda c, _: c.serviced_by_agent_id != "A1005" and c.callback_type.name != "STANDARD",
        lambda c: (c.status.name, c.callback_id),
    ),
    (
        {
            "or": [
                {"contact": {"timeZone": {"startsWith": "Europe/"}}},
                {"campaign": {"campaignType": {"eq": "INFINITE"}}, "callbackId": {"contains": "7"}},
            ]
        },
        None,
        lambda c, contacts: (
            contacts[c.contact_id].time_zone.startswith("Europe/")
            or (c.campaign_id % 3 == 1 and "7" in c.callback_id)
        ),
        lambda c: (c.created_at, c.callback_id),
    ),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_callbacks_pages_equal_an_independent_filter_in_order(
    graphql: GraphQLClient, seeded_database_url: URL, case: int
) -> None:
    filter_input, order_by, predicate, sort_key = CASES[case]
    callbacks, contacts = _all_rows(seeded_database_url)
    expected = [
        c.callback_id
        for c in sorted((c for c in callbacks if predicate(c, contacts)), key=sort_key)
    ]
    assert expected, "the case should select some rows"
    variables = {"filter": filter_input, "orderBy": order_by}
    forward, total = _page_through(graphql, variables, 97)
    assert total == len(expected)
    assert forward == expected
    backward, _ = _page_through(graphql, variables, 113, backward=True)
    assert backward == expected


def test_callbacks_total_count_alone_runs_one_statement(graphql: GraphQLClient) -> None:
    data = graphql.data("{ callbacks { totalCount } }")
    assert data["callbacks"]["totalCount"] == 1200
    assert len(graphql.statements) == 1


NESTED = """
query Nested($campaigns: Int) {
  campaigns(first: $campaigns) {
    edges { node { name callbacks(first: 5) {
      totalCount edges { node { callbackId contact { timeZone } } }
    } } }
  }
}
"""


@pytest.mark.parametrize("campaigns", [3, 24])
def test_nested_connection_statements_do_not_grow_with_parents(
    both_paths_graphql: GraphQLClient, campaigns: int
) -> None:
    graphql = both_paths_graphql
    data = graphql.data(NESTED, {"campaigns": campaigns})
    edges = data["campaigns"]["edges"]
    assert len(edges) == campaigns
    assert sum(len(e["node"]["callbacks"]["edges"]) for e in edges) > 0
    # Campaigns page, callbacks per campaign (window function), their counts; the general
    # path loads the contacts in a fourth, the compiled one joins them to the callbacks.
    assert len(graphql.statements) == (3 if graphql.compiled else 4), graphql.statements


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ("first: 501", "first must be at most 500"),
        ("first: -1", "must not be negative"),
        ("first: 2, last: 2", "not both"),
        ('after: "bm90IGEgY3Vyc29y"', "not a cursor of this connection"),
        ('after: "%%%"', "not a cursor of this connection"),
    ],
)
def test_callbacks_bad_page_arguments_are_bad_user_input(
    graphql: GraphQLClient, arguments: str, message: str
) -> None:
    body = graphql.execute(f"{{ callbacks({arguments}) {{ totalCount }} }}")
    error = body["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert message in error["message"]
    assert graphql.statements == []


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        ("{ callbacks(first: -1) { totalCount } }", None),
        ("{ callbacks(last: -3) { totalCount } }", None),
        ("query($n: Int) { callbacks(first: $n) { totalCount } }", {"n": -1}),
        ("{ callbacks(first: 501) { totalCount } }", None),
        ("query($n: Int) { callbacks(first: $n) { totalCount } }", {"n": 10000}),
    ],
)
def test_page_sizes_out_of_range_are_refused_alike_before_anything_runs(
    graphql: GraphQLClient, query: str, variables: dict[str, int] | None
) -> None:
    response = graphql.post(query, variables)
    assert response.status_code == 400
    body = response.json()
    assert "data" not in body or body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert graphql.statements == []


def test_callbacks_cursor_of_another_order_is_refused(graphql: GraphQLClient) -> None:
    page = graphql.data("{ callbacks(first: 1) { pageInfo { endCursor } } }")
    cursor = page["callbacks"]["pageInfo"]["endCursor"]
    body = graphql.execute(
        "query($after: String) { callbacks(first: 1, after: $after,"
        " orderBy: [{field: CALLBACK_ID}]) { totalCount } }",
        {"after": cursor},
    )
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_node_and_natural_key_lookups_agree(graphql: GraphQLClient) -> None:
    first = graphql.data(
        "{ callbacks(first: 1) { edges { node { id callbackId campaign { id name } } } } }"
    )
    node = first["callbacks"]["edges"][0]["node"]
    by_id = graphql.data(
        "query($id: ID!) { node(id: $id) { ... on Callback { callbackId } } }", {"id": node["id"]}
    )
    assert by_id["node"]["callbackId"] == node["callbackId"]
    campaign = graphql.data(
        "query($id: ID!) { node(id: $id) { ... on Campaign { name } } }",
        {"id": node["campaign"]["id"]},
    )
    assert campaign["node"]["name"] == node["campaign"]["name"]
    by_key = graphql.data(
        "query($key: String!) { callback(callbackId: $key) { id } }", {"key": node["callbackId"]}
    )
    assert by_key["callback"]["id"] == node["id"]
    assert graphql.data('{ callback(callbackId: "nope") { id } }')["callback"] is None
    bad = graphql.execute('{ node(id: "garbage!") { id } }')
    assert bad["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


EXCLUDED = """
query Excluded($excluded: Boolean!) {
  contacts(filter: {excluded: {eq: $excluded}}, first: 500) {
    totalCount edges { node { contactId excluded } }
  }
  callbacks(filter: {contact: {excluded: {eq: $excluded}}}, first: 500) {
    totalCount edges { node { callbackId contact { excluded } } }
  }
  notExcluded: contacts(filter: {not: {excluded: {eq: $excluded}}}) { totalCount }
}
"""


@pytest.mark.parametrize("excluded", [True, False])
def test_contacts_filter_on_excluded_as_an_independent_filter_on_both_paths(
    both_paths_graphql: GraphQLClient, seeded_database_url: URL, excluded: bool
) -> None:
    callbacks, contacts = _all_rows(seeded_database_url)
    expected_contacts = sorted(
        contact_id
        for contact_id, contact in contacts.items()
        if (contact.excluded_at is not None) == excluded
    )
    expected_callbacks = [
        c.callback_id
        for c in sorted(callbacks, key=lambda c: (c.created_at, c.callback_id))
        if (contacts[c.contact_id].excluded_at is not None) == excluded
    ]
    assert expected_contacts, "the seed should have both kinds of contact"
    assert expected_callbacks, "and callbacks for both"
    data = both_paths_graphql.data(EXCLUDED, {"excluded": excluded})
    found = data["contacts"]
    assert found["totalCount"] == len(expected_contacts)
    assert [edge["node"]["contactId"] for edge in found["edges"]] == expected_contacts
    assert {edge["node"]["excluded"] for edge in found["edges"]} == {excluded}
    assert data["notExcluded"]["totalCount"] == len(contacts) - len(expected_contacts)
    # Through the relation: callbacks whose contact is (or is not) excluded.
    nested = data["callbacks"]
    assert nested["totalCount"] == len(expected_callbacks)
    assert [edge["node"]["callbackId"] for edge in nested["edges"]] == expected_callbacks[:500]
    assert {edge["node"]["contact"]["excluded"] for edge in nested["edges"]} == {excluded}
