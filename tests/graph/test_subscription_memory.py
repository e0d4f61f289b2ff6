"""Subscription events must not accumulate executor state (graphql-core 3.3's shared memo)."""

from __future__ import annotations

from typing import Any

from graphql import build_schema, parse
from graphql.execution import Executor

from service.schema import SubscriptionEventExecutionContext, create_schema

SCHEMA = build_schema(
    """
    type Query { unused: String }
    type Greeting { text: String, words: [Word!]! }
    type Word { text: String }
    type Subscription { greeting: Greeting }
    """
)
DOCUMENT = parse("subscription { greeting { text words { text } } }")
EVENT = {"greeting": {"text": "hello there", "words": [{"text": "hello"}, {"text": "there"}]}}


def _memo_after_events(executor_class: type[Executor[Any]], events: int) -> int:
    executor = executor_class.build(SCHEMA, DOCUMENT)
    assert isinstance(executor, Executor)
    for _ in range(events):
        result = executor.build_per_event_executor(EVENT).execute_operation()
        assert result.data == EVENT  # type: ignore[union-attr]
    return len(executor._relevant_sub_fields)


def test_events_leave_no_memo_entries_behind() -> None:
    assert _memo_after_events(SubscriptionEventExecutionContext, 500) == 0


def test_stock_graphql_core_still_grows_its_memo_per_event() -> None:
    # When this fails, graphql-core has fixed the leak and the workaround can go.
    assert _memo_after_events(Executor, 500) >= 500


def test_the_served_schema_uses_the_per_event_memo() -> None:
    schema = create_schema()
    assert schema.execution_context_class is SubscriptionEventExecutionContext
