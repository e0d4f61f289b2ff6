"""A subscriber's bounded backlog: a slow one is closed, the others keep getting everything."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from service.db.models.callback import Callback, CallbackStatus
from service.errors import SubscriberTooSlowError
from service.events.changes import StatusChange, decode_change, encode_changes
from service.events.hub import ChangeFilter, DeliveredChange, Subscriber

NOW = dt.datetime(2026, 11, 29, 3, tzinfo=dt.UTC)


def _change(number: int, status: CallbackStatus = CallbackStatus.ACTIVE) -> DeliveredChange:
    callback = Callback(callback_id=f"CB{number}", creator_agent_id="A1", contact_id="C1")
    return DeliveredChange(number, callback, "Spring Renewals", None, status, NOW)


async def test_slow_subscriber_is_closed_and_others_get_every_change() -> None:
    fast = Subscriber(ChangeFilter(), backlog=3)
    slow = Subscriber(ChangeFilter(), backlog=3)
    fast_changes = fast.changes()
    received = []
    for number in range(10):
        for subscriber in (fast, slow):
            subscriber.offer(_change(number))
        received.append(await anext(fast_changes))
    assert [change.callback.callback_id for change in received] == [f"CB{n}" for n in range(10)]
    with pytest.raises(SubscriberTooSlowError, match="more than 3 changes waited"):
        await anext(slow.changes())


async def test_subscriber_gets_only_what_its_filter_matches() -> None:
    subscriber = Subscriber(
        ChangeFilter(
            campaign_names=frozenset({"Spring Renewals"}),
            statuses=frozenset({CallbackStatus.EXPIRED}),
        ),
        backlog=10,
    )
    subscriber.offer(_change(1))
    subscriber.offer(_change(2, CallbackStatus.EXPIRED))
    changes = subscriber.changes()
    assert (await anext(changes)).callback.callback_id == "CB2"


def test_change_wire_form_round_trips() -> None:
    change = StatusChange("CB1", CallbackStatus.ACTIVE, CallbackStatus.COMPLETED, NOW, 41)
    created = StatusChange("CB2", None, CallbackStatus.ACTIVE, NOW, 42)
    decoded = [decode_change(json.loads(message)) for message in encode_changes([change, created])]
    assert decoded == [change, created]
