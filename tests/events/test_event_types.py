"""Event wire form: every event round-trips; every bad payload names its field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from dashcache.errors import InvalidEvent
from dashcache.events import (
    CategoriesChanged,
    CategoryChange,
    EmailCreated,
    EmailDeleted,
    EmailRow,
    EmailUpdated,
    Event,
    decode_batch,
    decode_event,
    encode_event,
)

ROW = EmailRow(3, True, False, datetime(2026, 11, 24, 12, 0, tzinfo=UTC))
WIRE_ROW = {
    "category_id": 3,
    "is_unread": True,
    "is_auto_labeled": False,
    "created_at": "2026-11-24T12:00:00+00:00",
}
UPDATED = {"type": "email.updated", "account_id": 1, "email_id": 9, "before": WIRE_ROW}


@pytest.mark.parametrize(
    "event",
    [
        EmailCreated(1, 2, ROW),
        EmailUpdated(0, 2, ROW, EmailRow(None, False, True, ROW.created_at)),
        EmailDeleted(7, 2**63 - 1, ROW),
        CategoriesChanged((1, 2), CategoryChange.RENAMED),
    ],
)
def test_events_round_trip_through_the_wire_form(event: Event) -> None:
    """decode(encode(e)) == e for every event type, via real JSON types."""
    assert decode_event(encode_event(event)) == event


def test_wire_form_is_the_documented_shape() -> None:
    """An update encodes to the documented JSON object, created_at with its offset."""
    event = EmailUpdated(1, 9, ROW, ROW)
    assert encode_event(event) == {**UPDATED, "after": WIRE_ROW}


def test_created_at_keeps_any_offset() -> None:
    """A created_at with a non-UTC offset is accepted and means the same instant."""
    wire = {**WIRE_ROW, "created_at": "2026-11-24T14:00:00+02:00"}
    event = decode_event({"type": "email.created", "account_id": 1, "email_id": 2, "after": wire})
    assert isinstance(event, EmailCreated)
    assert event.after.created_at == ROW.created_at
    assert event.after.created_at.utcoffset() == timedelta(hours=2)
    assert event.after.created_at.tzinfo == timezone(timedelta(hours=2))


BAD: list[tuple[Any, str]] = [
    ({"type": "email.archived", "account_id": 1, "email_id": 2}, "events[0].type"),
    ({"account_id": 1, "email_id": 2}, "events[0].type"),
    ({**UPDATED, "after": WIRE_ROW, "account_id": -1}, "events[0].account_id"),
    ({**UPDATED, "after": WIRE_ROW, "email_id": "9"}, "events[0].email_id"),
    ({**UPDATED, "after": WIRE_ROW, "email_id": True}, "events[0].email_id"),
    ({**UPDATED, "after": WIRE_ROW, "account_id": 2**63}, "events[0].account_id"),
    (UPDATED, "events[0].after"),
    ({**UPDATED, "after": {**WIRE_ROW, "is_unread": 1}}, "events[0].after.is_unread"),
    ({**UPDATED, "after": {**WIRE_ROW, "category_id": -3}}, "events[0].after.category_id"),
    (
        {**UPDATED, "after": {**WIRE_ROW, "created_at": "2026-11-24T12:00:00"}},
        "events[0].after.created_at",
    ),
    ({**UPDATED, "after": {**WIRE_ROW, "created_at": "yesterday"}}, "events[0].after.created_at"),
    ({"type": "categories.changed", "change": "merged", "category_ids": [1]}, "events[0].change"),
    (
        {"type": "categories.changed", "change": "created", "category_ids": [1, -2]},
        "events[0].category_ids[1]",
    ),
    ({"type": "categories.changed", "change": "created"}, "events[0].category_ids"),
    ("email.updated", "events[0]"),
]


@pytest.mark.parametrize(("item", "field"), BAD)
def test_bad_event_names_its_field(item: Any, field: str) -> None:
    """Unknown type, missing, mistyped or negative fields raise InvalidEvent naming the field."""
    with pytest.raises(InvalidEvent) as raised:
        decode_batch([item], max_batch=10)
    assert raised.value.field == field


def test_oversized_or_non_list_batch_is_rejected() -> None:
    """A batch above the cap, or not a list, is rejected as a whole (field `events`)."""
    event = {**UPDATED, "after": WIRE_ROW}
    assert len(decode_batch([event] * 3, max_batch=3)) == 3
    for payload in ([event] * 4, event):
        with pytest.raises(InvalidEvent) as raised:
            decode_batch(payload, max_batch=3)
        assert raised.value.field == "events"


NAIVE = datetime(2026, 11, 24, 12, 0)
CONSTRUCTED: list[tuple[Any, str]] = [
    (lambda: EmailUpdated(-1, 9, ROW, ROW), "account_id"),
    (lambda: EmailCreated("x", 9, ROW), "account_id"),
    (lambda: EmailCreated(True, 9, ROW), "account_id"),
    (lambda: EmailDeleted(1, -5, ROW), "email_id"),
    (lambda: EmailDeleted(1, 2**63, ROW), "email_id"),
    (lambda: EmailCreated(1, 9, None), "after"),
    (lambda: EmailUpdated(1, 9, ROW, EmailRow(3, "yes", False, ROW.created_at)), "after.is_unread"),
    (
        lambda: EmailUpdated(1, 9, EmailRow(3, True, 0, ROW.created_at), ROW),
        "before.is_auto_labeled",
    ),
    (lambda: EmailDeleted(1, 9, EmailRow(-3, True, False, ROW.created_at)), "before.category_id"),
    (lambda: EmailCreated(1, 9, EmailRow(False, True, False, ROW.created_at)), "after.category_id"),
    (lambda: EmailCreated(1, 9, EmailRow(3, True, False, NAIVE)), "after.created_at"),
    (lambda: CategoriesChanged((1, -2)), "category_ids[1]"),
    (lambda: CategoriesChanged("12"), "category_ids"),
    (lambda: CategoriesChanged(None), "category_ids"),
    (lambda: CategoriesChanged((1,), "merged"), "change"),
]


@pytest.mark.parametrize(("build", "field"), CONSTRUCTED)
def test_constructors_refuse_what_the_wire_form_refuses(build: Any, field: str) -> None:
    """Every bad field raises InvalidEvent naming it, before any event exists."""
    with pytest.raises(InvalidEvent) as raised:
        build()
    assert raised.value.field == field
    assert str(raised.value).startswith(field + " ")


def test_constructor_and_wire_form_give_the_same_message() -> None:
    """What ingest would reject, a constructor rejects with the same words (less the location)."""
    pairs = [
        (lambda: EmailUpdated(-1, 9, ROW, ROW), {**UPDATED, "after": WIRE_ROW, "account_id": -1}),
        (
            lambda: EmailUpdated(1, 9, ROW, EmailRow(3, 1, False, ROW.created_at)),
            {**UPDATED, "after": {**WIRE_ROW, "is_unread": 1}},
        ),
        (
            lambda: EmailCreated(1, 9, EmailRow(3, True, False, NAIVE)),
            {
                "type": "email.created",
                "account_id": 1,
                "email_id": 9,
                "after": {**WIRE_ROW, "created_at": NAIVE.isoformat()},
            },
        ),
    ]
    for build, wire in pairs:
        with pytest.raises(InvalidEvent) as built:
            build()
        with pytest.raises(InvalidEvent) as decoded:
            decode_batch([wire], max_batch=10)
        assert str(decoded.value) == f"events[0].{built.value}"
        assert decoded.value.field == f"events[0].{built.value.field}"


def test_category_ids_take_any_sequence_and_change_its_value() -> None:
    """A list (the wire form's), a tuple or a range of ids, and `change` as the member or its
    string value, build the same event, which keeps a tuple and the member."""
    built = CategoriesChanged([10, 11], "renamed")
    assert built == CategoriesChanged((10, 11), CategoryChange.RENAMED)
    assert built == CategoriesChanged(range(10, 12), change="renamed")
    assert built.category_ids == (10, 11)
    assert built.change is CategoryChange.RENAMED
    assert hash(built) == hash(CategoriesChanged((10, 11), CategoryChange.RENAMED))
    assert decode_event(encode_event(built)) == built


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: CategoriesChanged([1], "merged"),
            "change must be one of 'created', 'renamed', 'deleted' (a CategoryChange or its "
            "value), got 'merged'",
        ),
        (
            lambda: CategoriesChanged("12"),
            "category_ids must be a sequence of ids (a list or a tuple of integers), got '12'",
        ),
        (lambda: CategoriesChanged([1, "2"]), "category_ids[1] must be an integer id, got '2'"),
        (
            lambda: decode_event({"type": "email.moved"}),
            "event.type must be one of 'email.created', 'email.updated', 'email.deleted', "
            "'categories.changed', got 'email.moved'",
        ),
        (lambda: decode_batch({"type": "x"}, 10), "an event batch must be a JSON array of events"),
        (lambda: decode_event(7), "event must be a JSON object, got int 7"),
    ],
)
def test_refusals_say_what_was_given_and_what_is_allowed(build: Any, message: str) -> None:
    """Each refusal names what is allowed and what it got, and never refuses what it lists."""
    with pytest.raises(InvalidEvent) as raised:
        build()
    assert str(raised.value).startswith(message)
