"""The compiled path answers exactly as the general path: generated queries over the served
schema, rewritten with aliases, fragments and directives, sent to two apps on the same data
(one with the compiled path, one without); the JSON bodies must be equal, errors included.

hypothesis-graphql draws the arguments at random, so most IDs name nothing, most cursors are
not cursors and some page sizes are too large: missing rows and refused arguments come
along with the pages. A fixed seed keeps the run the same every time.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
from collections.abc import Iterator
from typing import Any, cast

import pytest
from graphql import (
    ArgumentNode,
    BooleanValueNode,
    DirectiveNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLObjectType,
    InlineFragmentNode,
    NamedTypeNode,
    NameNode,
    OperationDefinitionNode,
    SelectionSetNode,
    StringValueNode,
    build_schema,
    get_named_type,
    print_ast,
)
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from hypothesis_graphql import queries
from sqlalchemy import Table, insert, select
from sqlalchemy.engine import URL
from starlette.testclient import TestClient

from service.app import create_app
from service.db.engines import create_engine
from service.db.models import Callback
from service.schema import create_schema
from service.settings import Settings
from tests.graphql_client import SEED_AS_OF
from tests.test_fuzz import DATE_TIMES

SCHEMA_TEXT = create_schema().as_str()
SCHEMA = build_schema(SCHEMA_TEXT)
EXAMPLES_PER_STORE = 1000


class Rewriter:
    """Rewrites a generated operation the way clients write them: aliases (some fields asked
    twice), inline and named fragments, `@include`/`@skip` and `__typename`."""

    def __init__(self, chance: random.Random, ids: list[str]) -> None:
        self.chance = chance
        self.ids = ids
        self.fragments: list[FragmentDefinitionNode] = []
        self.aliases = 0

    def document(self, document: DocumentNode) -> DocumentNode:
        (operation,) = document.definitions
        assert isinstance(operation, OperationDefinitionNode)
        query_type = SCHEMA.query_type
        assert query_type is not None
        selection_set = self.selection_set(operation.selection_set, query_type)
        rewritten = OperationDefinitionNode(
            operation=operation.operation,
            name=NameNode(value="Generated"),
            variable_definitions=(),
            directives=(),
            selection_set=selection_set,
        )
        return DocumentNode(definitions=(rewritten, *self.fragments))

    def selection_set(self, selection_set: SelectionSetNode, parent: Any) -> SelectionSetNode:
        selections: list[Any] = []
        for selection in selection_set.selections:
            if isinstance(selection, InlineFragmentNode):  # `... on Callback` under `node`
                assert selection.type_condition is not None
                on_type = SCHEMA.get_type(selection.type_condition.name.value)
                selections.append(
                    InlineFragmentNode(
                        type_condition=selection.type_condition,
                        selection_set=self.selection_set(selection.selection_set, on_type),
                        directives=(),
                    )
                )
                continue
            assert isinstance(selection, FieldNode)
            field = self.field(selection, parent)
            selections.append(field)
            if self.chance.random() < 0.15:
                selections.append(self.field(selection, parent, alias=True))
        if self.chance.random() < 0.2:
            selections.append(FieldNode(name=NameNode(value="__typename")))
        if isinstance(parent, GraphQLObjectType) and self.chance.random() < 0.25:
            return SelectionSetNode(selections=(self.spread(selections, parent),))
        if self.chance.random() < 0.15:
            return SelectionSetNode(
                selections=(
                    InlineFragmentNode(
                        type_condition=NamedTypeNode(name=NameNode(value=parent.name)),
                        selection_set=SelectionSetNode(selections=tuple(selections)),
                        directives=(),
                    ),
                )
            )
        return SelectionSetNode(selections=tuple(selections))

    def spread(self, selections: list[Any], parent: GraphQLObjectType) -> FragmentSpreadNode:
        name = f"F{len(self.fragments)}"
        self.fragments.append(
            FragmentDefinitionNode(
                name=NameNode(value=name),
                type_condition=NamedTypeNode(name=NameNode(value=parent.name)),
                selection_set=SelectionSetNode(selections=tuple(selections)),
                directives=(),
            )
        )
        return FragmentSpreadNode(name=NameNode(value=name), directives=())

    def field(self, field: FieldNode, parent: Any, *, alias: bool = False) -> FieldNode:
        selection_set = None
        if field.selection_set is not None:
            field_type = get_named_type(parent.fields[field.name.value].type)
            selection_set = self.selection_set(field.selection_set, field_type)
        directives: tuple[DirectiveNode, ...] = ()
        if self.chance.random() < 0.1:
            directives = (
                DirectiveNode(
                    name=NameNode(value=self.chance.choice(["include", "skip"])),
                    arguments=(
                        ArgumentNode(
                            name=NameNode(value="if"),
                            value=BooleanValueNode(value=self.chance.random() < 0.5),
                        ),
                    ),
                ),
            )
        new_alias = field.alias
        if alias or self.chance.random() < 0.1:
            self.aliases += 1
            new_alias = NameNode(value=f"a{self.aliases}")
        arguments = field.arguments
        if field.name.value == "node":  # random text is never an ID: mostly real ones
            arguments = (
                ArgumentNode(
                    name=NameNode(value="id"),
                    value=StringValueNode(value=self.chance.choice(self.ids)),
                ),
            )
        return FieldNode(
            alias=new_alias,
            name=field.name,
            arguments=arguments,
            directives=directives,
            selection_set=selection_set,
        )


SIGNING_SECRET = "the differential test's own, 32 characters or more"


def _without_request_ids(body: Any) -> Any:
    for error in body.get("errors") or []:
        error.get("extensions", {}).pop("requestId", None)
        if "request id" in error.get("message", ""):
            error["message"] = "masked"
    return body


SAMPLE_IDS = """{ callbacks(first: 3) { edges { node {
  id campaign { id } job { id } creatorAgent { id } contact { id } attempts { id } } } } }"""


def _global_ids(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "id":
                yield item
            else:
                yield from _global_ids(item)
    elif isinstance(value, list):
        for item in value:
            yield from _global_ids(item)


@pytest.fixture
def two_paths(
    seeded_database_url: URL, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[TestClient, TestClient]]:
    # One clock for both: the report's query time and relative periods must not differ.
    monkeypatch.setattr(
        "service.reports.callbacks_scheduled_details.query.utc_now", lambda: SEED_AS_OF
    )

    with both_paths(seeded_database_url, open_without_keys=True) as paths:
        yield paths


@contextlib.contextmanager
def both_paths(
    database_url: URL, *, open_without_keys: bool
) -> Iterator[tuple[TestClient, TestClient]]:
    """Two apps on the same data: one with the compiled path, one without."""

    def app(compiled: bool) -> Any:
        return create_app(
            Settings(
                database_url=database_url,
                max_page_size=40,
                expiry_sweep_seconds=0,
                open_without_keys=open_without_keys,
                api_key_cache_seconds=3600,
                compiled_execution=compiled,
                # One secret for both: a report's csvUrl must come out the same on each.
                url_signing_secret=SIGNING_SECRET,
            )
        )

    with (
        TestClient(app(True), raise_server_exceptions=False) as compiled,
        TestClient(app(False), raise_server_exceptions=False) as general,
    ):
        yield compiled, general


def assert_same_answer(
    paths: tuple[TestClient, TestClient], query: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    compiled, general = paths
    payload = {"query": query, "variables": variables}
    from_general = general.post("/graphql", json=payload)
    general_body = _without_request_ids(from_general.json())
    # Twice: first through Strawberry's pipeline (which plans it), then, with its plan
    # ready, through the compiled path's own endpoint.
    for _ in range(2):
        from_compiled = compiled.post("/graphql", json=payload)
        assert from_compiled.status_code == from_general.status_code, query
        assert from_compiled.headers["content-type"] == from_general.headers["content-type"]
        compiled_body = _without_request_ids(from_compiled.json())
        assert compiled_body == general_body, query
    return compiled_body  # type: ignore[no-any-return]


# Written out: filters the generator reaches only by chance, with values that match rows.
DERIVED_FILTERS = [
    """{ contacts(filter: {excluded: {eq: true}}) { totalCount edges { node {
      contactId excluded excludedTime
      callbacks(first: 3, filter: {contact: {excluded: {eq: true}}}) {
        totalCount edges { node { callbackId callbackStatus } } } } } } }""",
    """{ contacts(first: 5, filter: {or: [{excluded: {eq: false}}, {excluded: {isNull: true}}],
                                  not: {excluded: {eq: true}}}) {
      totalCount edges { cursor node { contactId excluded } } } }""",
    """{ callbacks(first: 10, filter: {contact: {excluded: {eq: true}},
                                      callbackStatus: {eq: CONTACT_EXCLUDED}}) {
      totalCount edges { node { callbackId contact { contactId excluded } } } }
      campaigns(first: 2) { edges { node { name
        callbacks(first: 2, filter: {not: {contact: {excluded: {eq: false}}}}) {
          totalCount edges { node { callbackId } } } } } } }""",
]


@pytest.mark.parametrize("query", DERIVED_FILTERS)
def test_derived_field_filters_get_the_same_answer_on_both_paths(
    two_paths: tuple[TestClient, TestClient], query: str
) -> None:
    body = assert_same_answer(two_paths, query)
    assert "errors" not in body, body["errors"]
    assert two_paths[0].app.state.compiled_queries.answered_directly == 1  # type: ignore[attr-defined]


SUMMARIES = [
    """{ callbacksScheduledSummary(groupBy: [CALLBACK_STATUS]) {
      __typename totalRecords timePeriod { from to timeZone label } queryTime
      groups { count callbackStatus callbackType campaignName creationHour } } }""",
    """{ s: callbacksScheduledSummary(
           timePeriod: {from: "2026-10-20T00:00:00Z", to: "2026-11-10T00:00:00Z",
                        timeZone: "America/New_York"},
           groupBy: [CREATION_DAY, CREATION_HOUR, CAMPAIGN]) {
      total: totalRecords groups { n: count creationDay creationHour campaignName } } }""",
    """query($agent: String, $withGroups: Boolean!) {
      callbacksScheduledSummary(timePeriod: {lastDays: 30, timeZone: "Asia/Kolkata"},
          filters: {agentId: $agent}, groupBy: [CREATOR_AGENT, SYSTEM_COMPLETION_CODE]) {
        filters { name value } ...Counts
        groups @include(if: $withGroups) {
          count creatorAgentId servicedByAgentId systemCompletionCode __typename } } }
    fragment Counts on CallbacksScheduledSummary { totalRecords }""",
    """{ callbacksScheduledSummary(timePeriod: {preset: ALL},
          groupBy: [SERVICED_BY_AGENT, CALLBACK_TYPE]) { groups { count servicedByAgentId
          callbackType } } a: callbacksScheduledSummary(groupBy: [CAMPAIGN]) { queryTime } }""",
    "{ callbacksScheduledSummary(groupBy: []) { totalRecords } }",
    "{ callbacksScheduledSummary(groupBy: [CAMPAIGN, CAMPAIGN]) { totalRecords } }",
    """{ callbacksScheduledSummary(timePeriod: {timeZone: "Mars/Olympus"},
          groupBy: [CAMPAIGN]) { totalRecords } }""",
]


def test_local_times_with_an_offset_in_seconds_are_written_as_isoformat_writes_them(
    two_paths: tuple[TestClient, TestClient], seeded_database_url: URL
) -> None:
    # Liberia kept -00:44:30 until 1972: a creation hour there has an offset in seconds,
    # which orjson would round to minutes (a different instant), so local times are written
    # by isoformat() on the compiled path too.
    async def add_an_old_callback() -> None:
        engine = create_engine(seeded_database_url)
        try:
            async with engine.begin() as connection:
                callbacks = cast(Table, Callback.__table__)
                row = (await connection.execute(select(callbacks).limit(1))).mappings().one()
                old = dict(row, callback_id="CB-1970", call_id="CALL-1970")
                old["created_at"] = dt.datetime(1970, 6, 1, 12, tzinfo=dt.UTC)
                await connection.execute(insert(callbacks).values(old))
        finally:
            await engine.dispose()

    asyncio.run(add_an_old_callback())
    body = assert_same_answer(
        two_paths,
        """{ callbacksScheduledSummary(groupBy: [CREATION_HOUR], timePeriod: {
              from: "1970-05-20", to: "1970-06-10", timeZone: "Africa/Monrovia"}) {
            timePeriod { from to } groups { creationHour count } } }""",
    )
    summary = body["data"]["callbacksScheduledSummary"]
    assert summary["groups"] == [{"creationHour": "1970-06-01T11:00:00-00:44:30", "count": 1}]


@pytest.mark.parametrize("query", SUMMARIES)
def test_summaries_get_the_same_answer_on_both_paths(
    two_paths: tuple[TestClient, TestClient], query: str
) -> None:
    variables = {"agent": "A1001", "withGroups": True} if "$agent" in query else None
    body = assert_same_answer(two_paths, query, variables)
    compiled_queries = two_paths[0].app.state.compiled_queries  # type: ignore[attr-defined]
    if "groupBy: []" in query or "CAMPAIGN, CAMPAIGN" in query or "Mars" in query:
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        return
    assert "errors" not in body, body["errors"]
    # Planned and answered by the compiled path, none of it left to the general one.
    assert compiled_queries.answered >= 1
    assert compiled_queries.left == 0


# A thousand generated queries, each on both paths: about two minutes of one core, which a busy
# machine stretches past the suite's default timeout.
@pytest.mark.timeout(600)
def test_generated_queries_get_the_same_answer_on_both_paths(
    two_paths: tuple[TestClient, TestClient],
) -> None:
    # IDs of real rows of every type, mostly; also IDs of nothing and IDs that are not IDs.
    real_ids = sorted(set(_global_ids(assert_same_answer(two_paths, SAMPLE_IDS))))
    ids = [*real_ids, *real_ids, "Q2FsbGJhY2s6bm9uZQ==", "Sm9iOm5vbmU=", "not an id"]

    @seed(20261204)
    @settings(
        max_examples=EXAMPLES_PER_STORE,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        document=queries(
            SCHEMA_TEXT,
            custom_scalars={"DateTime": DATE_TIMES},
            print_ast=lambda document: document,
            allow_x00=False,
        ),
        chance=st.randoms(use_true_random=False),
    )
    def check(document: Any, chance: random.Random) -> None:
        assert_same_answer(two_paths, print_ast(Rewriter(chance, ids).document(document)))

    check()
    compiled_queries = two_paths[0].app.state.compiled_queries  # type: ignore[attr-defined]
    print(
        f"compiled path answered {compiled_queries.answered} "
        f"({compiled_queries.answered_directly} through its endpoint), "
        f"left {compiled_queries.left}"
    )
    # Most answers came from plans; the rest (errors, introspection) from the general path,
    # and some operations were refused before either (limits). 515 of 1,000 when written.
    # Each operation is sent twice to the compiled app: a planned one's second answer comes
    # through the endpoint.
    assert compiled_queries.answered >= EXAMPLES_PER_STORE * 0.8, (
        compiled_queries.answered,
        compiled_queries.left,
    )
    assert compiled_queries.answered_directly >= EXAMPLES_PER_STORE * 0.4
