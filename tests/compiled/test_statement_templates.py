"""Statements made once per shape answer every request of that shape with its own values.

A template is reused for requests that differ only in values, so the checks here send the
same documents again and again with different variables and different callers' keys (an
admin, a viewer and two agents, taking turns) to both paths over the same data, and compare
the answers; then they check the templates were in fact reused, and that a template evicted
and made again (which SQLAlchemy may find compiled already from its first object) still
takes each request's values.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from collections.abc import Iterator
from typing import Any

import pytest
from graphql.execution.values import get_argument_values
from sqlalchemy import Select, func, literal, select, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.visitors import replacement_traverse
from strawberry.types.arguments import convert_arguments

from service.auth.api_keys import create_api_key
from service.compiled.rows import FieldArguments
from service.compiled.templates import StatementParts, StatementTemplates
from service.db.engines import create_engine
from service.db.models import Callback
from service.db.models.api_key import Role
from tests.compiled.test_differential import _without_request_ids, both_paths
from tests.graphql_client import SEED_AS_OF, on_database

REPORT = """
query Report($timePeriod: TimePeriodInput, $filters: CallbacksScheduledDetailsFilters,
             $first: Int, $last: Int, $after: String, $before: String,
             $orderBy: [CallbackOrder!]) {
  callbacksScheduledDetails(timePeriod: $timePeriod, filters: $filters) {
    totalRecords
    rows(first: $first, last: $last, after: $after, before: $before, orderBy: $orderBy) {
      totalCount
      edges { cursor node {
        callbackId callbackStatus creationTime servicedByAgentId
        campaign { name } creatorAgent { agentId name } contact { contactId timeZone }
        attempts { attemptTime systemCompletionCode }
      } }
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    }
  }
}"""

CALLBACKS = """
query Callbacks($filter: CallbackFilter, $orderBy: [CallbackOrder!], $first: Int,
                $after: String) {
  callbacks(filter: $filter, orderBy: $orderBy, first: $first, after: $after) {
    totalCount
    edges { cursor node { callbackId jobId callbackType contact { contactId } } }
    pageInfo { hasNextPage endCursor }
  }
}"""

NESTED = """
query Nested($filter: CallbackFilter, $orderBy: [CallbackOrder!], $first: Int,
             $after: String) {
  campaigns(first: 6) { edges { node { name
    callbacks(filter: $filter, orderBy: $orderBy, first: $first, after: $after) {
      totalCount
      edges { cursor node { callbackId creatorAgent { name } attempts { attemptTime } } }
    }
  } } }
}"""

LOOKUPS = """
query Lookups($callbackId: String!, $agentId: String!, $contactId: String!) {
  callback(callbackId: $callbackId) { callbackId creatorAgent { agentId } attempts { dummy } }
  agent(agentId: $agentId) { agentId name }
  contact(contactId: $contactId) { contactId timeZone }
}"""

# A few orders, so that shapes repeat with other values (and cursors find their order again).
ORDERS: list[list[dict[str, str]] | None] = [
    None,
    [{"field": "CREATION_TIME", "direction": "ASC"}, {"field": "CALLBACK_ID", "direction": "ASC"}],
    [{"field": "SCHEDULED_START_TIME", "direction": "DESC"}],
    [{"field": "CALLBACK_STATUS", "direction": "ASC"}, {"field": "JOB_ID", "direction": "DESC"}],
]
STATUSES = ["ACTIVE", "COMPLETED", "EXPIRED", "CAMPAIGN_TERMINATED", "CONTACT_EXCLUDED"]


def _instant(value: Any) -> dt.datetime:
    """A creation time as either store gives it to plain SQL (SQLite: text, in UTC)."""
    instant = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value)
    return instant if instant.tzinfo else instant.replace(tzinfo=dt.UTC)


class Requests:
    """Random variables for the documents above, from values that match seeded rows."""

    def __init__(self, chance: random.Random, agents: list[str], rows: list[Any]) -> None:
        self.chance = chance
        self.agents = agents
        self.rows = rows
        self.order = 0  # the last request's order
        # Cursors of earlier pages, by document and order.
        self.cursors: dict[tuple[str, int], list[str]] = {}

    def period(self) -> dict[str, Any] | None:
        kind = self.chance.randrange(5)
        if kind == 0:
            return None
        if kind == 1:
            return {"lastDays": self.chance.randint(1, 60)}
        if kind == 2:
            return {"preset": self.chance.choice(["ALL", "THIS_MONTH", "LAST_WEEK"])}
        start = _instant(self.chance.choice(self.rows).created_at)
        period = {"from": start.isoformat(), "to": SEED_AS_OF.isoformat()}
        if kind == 4:
            period["timeZone"] = self.chance.choice(["America/New_York", "Asia/Kolkata"])
        return period

    def report_filters(self) -> dict[str, Any] | None:
        filters: dict[str, Any] = {}
        row = self.chance.choice(self.rows)
        if self.chance.random() < 0.4:
            filters["agentId"] = self.chance.choice([*self.agents, row.creator_agent_id])
        if self.chance.random() < 0.3:
            # A list of any length: one parameter, one shape.
            filters["callbackStatuses"] = self.chance.sample(STATUSES, self.chance.randint(1, 3))
        if self.chance.random() < 0.1:
            filters["contactId"] = row.contact_id
        if self.chance.random() < 0.1:
            filters["jobIds"] = [r.job_id for r in self.chance.sample(self.rows, 3)]
        return filters or None

    def page(self, document: str, order: int) -> dict[str, Any]:
        size = self.chance.choice([1, 2, 5, 10, 40])
        cursors = self.cursors.get((document, order), [])
        if cursors and self.chance.random() < 0.5:
            cursor = self.chance.choice(cursors)
            if self.chance.random() < 0.05:
                cursor = cursor[:-4]  # not a cursor: refused on both paths
            if document == REPORT and self.chance.random() < 0.5:
                return {"last": size, "before": cursor}
            return {"first": size, "after": cursor}
        if document == REPORT and self.chance.random() < 0.2:
            return {"last": size}
        return {"first": size}

    def callback_filter(self) -> dict[str, Any] | None:
        row = self.chance.choice(self.rows)
        choices: list[dict[str, Any]] = [
            {"creatorAgentId": {"eq": self.chance.choice(self.agents)}},
            {"callbackStatus": {"in": self.chance.sample(STATUSES, self.chance.randint(1, 4))}},
            {"jobId": {"gte": row.job_id}},
            {"servicedByAgentId": {"isNull": self.chance.random() < 0.5}},
            {"creationTime": {"lt": _instant(row.created_at).isoformat()}},
            {"or": [{"contactId": {"eq": row.contact_id}}, {"callbackId": {"startsWith": "CB"}}]},
            {"not": {"callbackType": {"eq": "CAMPAIGN"}}},
        ]
        if self.chance.random() < 0.2:
            return None
        return self.chance.choice(choices)

    def next(self) -> tuple[str, dict[str, Any]]:
        document = self.chance.choice([REPORT, REPORT, CALLBACKS, NESTED, LOOKUPS])
        order = self.chance.randrange(len(ORDERS))
        self.order = order
        if document == REPORT:
            variables = {
                "timePeriod": self.period(),
                "filters": self.report_filters(),
                "orderBy": ORDERS[order],
                **self.page(REPORT, order),
            }
        elif document in (CALLBACKS, NESTED):
            variables = {"filter": self.callback_filter(), "orderBy": ORDERS[order]}
            variables.update(self.page(document, order))
        else:
            row = self.chance.choice(self.rows)
            variables = {
                "callbackId": self.chance.choice([row.callback_id, "no such callback"]),
                "agentId": self.chance.choice(self.agents),
                "contactId": row.contact_id,
            }
        return document, variables

    def remember(self, document: str, body: dict[str, Any]) -> None:
        """Keep the cursors of a page to send with later requests."""
        data = body.get("data") or {}
        if document == REPORT:
            connections = [(data.get("callbacksScheduledDetails") or {}).get("rows")]
        elif document == NESTED and data:
            connections = [edge["node"]["callbacks"] for edge in data["campaigns"]["edges"]]
        else:
            connections = [data.get("callbacks")]
        cursors = self.cursors.setdefault((document, self.order), [])
        for connection in connections:
            if connection:
                cursors.extend(edge["cursor"] for edge in connection["edges"][:2])


@pytest.fixture
def keyed_paths(seeded_database_url: URL, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Both paths over the same data with keys required, and one key per caller."""
    monkeypatch.setattr(
        "service.reports.callbacks_scheduled_details.query.utc_now", lambda: SEED_AS_OF
    )
    rows = _sql(
        seeded_database_url,
        "SELECT callback_id, creator_agent_id, contact_id, job_id, created_at FROM callback "
        "ORDER BY callback_id",
    )
    counted: dict[str, int] = {}
    for row in rows:
        counted[row.creator_agent_id] = counted.get(row.creator_agent_id, 0) + 1
    agents = sorted(counted, key=lambda agent: (-counted[agent], agent))[:2]

    async def issue(sessions: async_sessionmaker[AsyncSession]) -> dict[str, str]:
        keys = {}
        for name, role, agent in (
            ("admin", Role.ADMIN, None),
            ("viewer", Role.VIEWER, None),
            ("agent 1", Role.AGENT, agents[0]),
            ("agent 2", Role.AGENT, agents[1]),
        ):
            _row, keys[name] = await create_api_key(sessions, role, agent_id=agent)
        return keys

    keys = on_database(seeded_database_url, issue)

    with both_paths(seeded_database_url, open_without_keys=False) as (compiled, general):
        yield compiled, general, keys, agents, rows


AGENTS = "SELECT DISTINCT creator_agent_id FROM callback ORDER BY creator_agent_id"
CREATED_BY = "SELECT count(*) FROM callback WHERE creator_agent_id = :agent"
VISIBLE_TO_AGENT = """SELECT callback_id FROM callback WHERE creator_agent_id = :agent
    OR created_for_agent_id = :agent OR serviced_by_agent_id = :agent"""


def _sql(database_url: URL, statement: str | Select[Any], values: Any = None) -> list[Any]:
    """The rows of a statement (plain SQL, or a template with its values), on an engine of
    its own."""

    async def read() -> list[Any]:
        engine = create_engine(database_url)
        try:
            async with engine.connect() as connection:
                executable = text(statement) if isinstance(statement, str) else statement
                return list((await connection.execute(executable, values)).all())
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_requests_of_one_shape_with_other_values_and_callers_get_the_general_paths_answers(
    keyed_paths: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiled, general, keys, agents, rows = keyed_paths
    made = _count_made(monkeypatch)
    requests = Requests(random.Random(20261207), agents, rows)
    answered = {"data": 0, "errors": 0}
    scoped = 0
    for _ in range(300):
        document, variables = requests.next()
        caller = requests.chance.choice(list(keys))
        payload = {"query": document, "variables": variables}
        headers = {"Authorization": f"Bearer {keys[caller]}"}
        expected = general.post("/graphql", json=payload, headers=headers)
        got = compiled.post("/graphql", json=payload, headers=headers)
        assert got.status_code == expected.status_code, (caller, variables)
        body = _without_request_ids(got.json())
        assert body == _without_request_ids(expected.json()), (caller, document, variables)
        answered["errors" if "errors" in body else "data"] += 1
        scoped += caller.startswith("agent") and "errors" not in body
        requests.remember(document, body)
    # Most requests were answered with rows, by agents too, and refused cursors came along.
    assert answered["data"] > 200, answered
    assert answered["errors"] >= 3, answered
    assert scoped > 80
    queries = compiled.app.state.compiled_queries
    print(f"answered {answered}, by agents {scoped}, directly {queries.answered_directly}, {made}")
    assert queries.answered_directly > 250, queries.answered_directly
    # Each statement was made once per shape (of which there are hundreds here), and used
    # again for every later request of that shape.
    assert made["asked"] - made["made"] > 150, made


def test_agents_taking_turns_on_one_template_each_see_only_their_own_callbacks(
    keyed_paths: Any, seeded_database_url: URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiled, _general, keys, agents, _rows = keyed_paths
    made = _count_made(monkeypatch)
    page = """{ callbacksScheduledDetails(timePeriod: {preset: ALL}) {
      totalRecords rows(first: 40) { edges { node { callbackId attempts { dummy } } } } } }"""
    visible = {
        agent: {
            row.callback_id for row in _sql(seeded_database_url, VISIBLE_TO_AGENT, {"agent": agent})
        }
        for agent in agents
    }
    assert visible[agents[0]] != visible[agents[1]]
    for turn in range(6):
        caller = ("agent 1", "agent 2")[turn % 2]
        agent = agents[turn % 2]
        response = compiled.post(
            "/graphql", json={"query": page}, headers={"Authorization": f"Bearer {keys[caller]}"}
        )
        report = response.json()["data"]["callbacksScheduledDetails"]
        seen = {edge["node"]["callbackId"] for edge in report["rows"]["edges"]}
        assert report["totalRecords"] == len(visible[agent])
        assert seen <= visible[agent]
        assert len(seen) == min(40, len(visible[agent]))
    # Page and count (and on SQLite the attempts), made on the first turn (the count's
    # template may be there already: counts share theirs across plans) and used again on
    # every other.
    statements = 2 if compiled.app.state.engine.dialect.name == "postgresql" else 3
    assert made["asked"] == 6 * statements
    assert statements - 1 <= made["made"] <= statements, made


def _count_made(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How many statements templates made ("made") and were asked for ("asked")."""
    made = {"made": 0, "asked": 0}
    make, statement = StatementTemplates._make, StatementTemplates.statement

    def making(self: StatementTemplates, statics: Any, parts: StatementParts) -> Select[Any]:
        made["made"] += 1
        return make(self, statics, parts)

    def asking(
        self: StatementTemplates, statics: Any, parts: StatementParts
    ) -> tuple[Select[Any], dict[str, Any]]:
        made["asked"] += 1
        return statement(self, statics, parts)

    monkeypatch.setattr(StatementTemplates, "_make", making)
    monkeypatch.setattr(StatementTemplates, "statement", asking)
    return made


def _count_by_agent(statics: Any, parts: StatementParts) -> Select[Any]:
    (condition,) = parts
    return select(func.count()).select_from(Callback.__table__).where(condition)


def test_a_template_made_again_after_eviction_takes_each_requests_values(
    seeded_database_url: URL,
) -> None:
    # Room for one shape: "one agent" is evicted by "two agents" and made again as a new
    # object while SQLAlchemy still holds the statement it compiled for that shape from the
    # first object; the request after that reuses the new template, and its values must
    # reach the statement compiled from the old one.
    counts = StatementTemplates(_count_by_agent, capacity=1)
    table = Callback.__table__.c
    one_agent = "creator_agent_id = :agent"
    two_agents = "creator_agent_id IN (:agent, :other)"

    async def run() -> None:
        engine = create_engine(seeded_database_url)
        try:
            async with engine.connect() as connection:
                agents = list((await connection.execute(text(AGENTS))).scalars())[:6]
                for number, agent in enumerate(agents):
                    other = agents[number - 1]
                    for independent, chosen in (
                        (one_agent, agent),
                        (two_agents, agent),
                        (one_agent, other),  # made again
                        (one_agent, agents[number - 2]),  # the new template reused
                    ):
                        condition = (
                            table.creator_agent_id == chosen
                            if independent == one_agent
                            else table.creator_agent_id.in_([chosen, other])
                        )
                        statement, values = counts.statement(None, (condition,))
                        got = (await connection.execute(statement, values)).scalar_one()
                        expected = await connection.execute(
                            text(f"SELECT count(*) FROM callback WHERE {independent}"),
                            {"agent": chosen, "other": other},
                        )
                        assert got == expected.scalar_one(), (chosen, independent)
        finally:
            await engine.dispose()

    asyncio.run(run())
    assert counts.made == 3 + 5 * 2  # then "one agent" is there when the next agent comes


def test_a_build_that_copies_its_parameters_is_made_for_every_request(
    seeded_database_url: URL, caplog: pytest.LogCaptureFixture
) -> None:
    def copying(statics: Any, parts: StatementParts) -> Select[Any]:
        # What a build must not do: put new parameters in place of its parts' own (here
        # with the same values), which the values of later requests could not find.
        (condition,) = parts
        copied = replacement_traverse(
            condition,
            {},
            lambda element, **_kw: (
                literal(element.value) if isinstance(element, BindParameter) else None
            ),
        )
        return _count_by_agent(statics, (copied,))

    counts = StatementTemplates(copying)
    table = Callback.__table__.c
    agents = [row.creator_agent_id for row in _sql(seeded_database_url, AGENTS)][:3]
    with caplog.at_level("WARNING", logger="service.compiled.templates"):
        for agent in agents:
            statement, values = counts.statement(None, (table.creator_agent_id == agent,))
            (got,) = _sql(seeded_database_url, statement, values)
            (expected,) = _sql(seeded_database_url, CREATED_BY, {"agent": agent})
            assert got == expected
    assert "did not keep its parts' parameters" in caplog.text
    # The attempt at a template, then each request's own.
    assert counts.made == 1 + len(agents)


def test_arguments_convert_to_what_strawberry_makes_of_them(
    keyed_paths: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every field's arguments, converted by the compiled path's converters and by
    # Strawberry's own function, for the varied requests of the test above.
    compiled, _general, keys, agents, rows = keyed_paths
    compared: dict[str, int] = {}
    values = FieldArguments.values

    def both(self: FieldArguments, run: Any) -> dict[str, Any]:
        converted = values(self, run)
        assert self.convert is not None, self.field
        raw = get_argument_values(self.field, self.node, run.variable_values)
        definition = self.field.extensions["strawberry-definition"]
        expected = convert_arguments(
            raw,
            definition.arguments,
            scalar_registry=self.strawberry_schema.schema_converter.scalar_registry,
            config=self.strawberry_schema.config,
        )
        assert converted == expected
        assert [type(value) for value in converted.values()] == [
            type(value) for value in expected.values()
        ]
        compared[self.node.name.value] = compared.get(self.node.name.value, 0) + 1
        return converted

    monkeypatch.setattr(FieldArguments, "values", both)
    requests = Requests(random.Random(7), agents, rows)
    headers = {"Authorization": f"Bearer {keys['admin']}"}
    for _ in range(120):
        document, variables = requests.next()
        body = compiled.post(
            "/graphql", json={"query": document, "variables": variables}, headers=headers
        ).json()
        requests.remember(document, body)
    # Nested and/or/not filters, lists of enums, orders, periods, filters, pages, lookups.
    assert set(compared) >= {"callbacksScheduledDetails", "rows", "callbacks", "callback"}
    assert sum(compared.values()) > 200, compared


def test_a_parameter_shared_by_two_parts_is_not_taken_for_two(seeded_database_url: URL) -> None:
    # The same parameter object in both parts: its template has one name for both places,
    # so it must not answer requests whose two values differ.
    def between(statics: Any, parts: StatementParts) -> Select[Any]:
        return select(func.count()).select_from(Callback.__table__).where(*parts)

    counts = StatementTemplates(between)
    table = Callback.__table__.c
    jobs = sorted({row.job_id for row in _sql(seeded_database_url, "SELECT job_id FROM callback")})
    shared = literal(jobs[0])
    for low, high in ((shared, shared), (literal(jobs[0]), literal(jobs[5]))):
        statement, values = counts.statement(None, (table.job_id >= low, table.job_id <= high))
        (got,) = _sql(seeded_database_url, statement, values)
        (expected,) = _sql(
            seeded_database_url,
            "SELECT count(*) FROM callback WHERE job_id BETWEEN :low AND :high",
            {"low": low.value, "high": high.value},
        )
        assert got == expected
    assert counts.made == 2
