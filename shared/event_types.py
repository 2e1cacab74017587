"""Mutation events: typed, immutable, with a JSON wire form any producer can send.

Wire form (one JSON object per event; a batch is a JSON array of them):

    {"type": "email.created", "account_id": 3, "email_id": 10, "after": ROW}
    {"type": "email.updated", "account_id": 3, "email_id": 10, "before": ROW, "after": ROW}
    {"type": "email.deleted", "account_id": 3, "email_id": 10, "before": ROW}
    {"type": "categories.changed", "change": "created" | "renamed" | "deleted",
     "category_ids": [1, 2]}

    ROW = {"category_id": 2 | null, "is_unread": true, "is_auto_labeled": false,
           "created_at": "2026-11-24T12:00:00+00:00"}

Ids are integers from 0 to 2**63-1; `created_at` is ISO-8601 with a UTC offset. Fields not
listed are ignored. Anything else raises `InvalidEvent` whose `field` names the culprit, e.g.
`events[3].after.is_unread`.

A single-tenant app (no account column in the schema mapping) has no accounts: its email events
leave `account_id` out (null reads the same; None in the types). A multi-tenant deployment
rejects such an event when it is published, as a single-tenant one rejects an account id.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from shared.errors import InvalidEvent

MAX_ID = 2**63 - 1


@dataclass(frozen=True, slots=True)
class EmailRow:
    """The counted fields of one email, as they were before or after a change."""

    category_id: int | None
    is_unread: bool
    is_auto_labeled: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class EmailCreated:
    """An email was inserted."""

    account_id: int | None
    email_id: int
    after: EmailRow


@dataclass(frozen=True, slots=True)
class EmailUpdated:
    """An email's counted fields may have changed (it stayed in the same account)."""

    account_id: int | None
    email_id: int
    before: EmailRow
    after: EmailRow


@dataclass(frozen=True, slots=True)
class EmailDeleted:
    """An email was deleted."""

    account_id: int | None
    email_id: int
    before: EmailRow


class CategoryChange(StrEnum):
    """What happened to the categories."""

    CREATED = "created"
    RENAMED = "renamed"
    DELETED = "deleted"


@dataclass(frozen=True, slots=True)
class CategoriesChanged:
    """Categories of the shared taxonomy were created, renamed or deleted."""

    category_ids: tuple[int, ...]
    change: CategoryChange = CategoryChange.CREATED


Event = EmailCreated | EmailUpdated | EmailDeleted | CategoriesChanged

_TYPES: dict[type, str] = {
    EmailCreated: "email.created",
    EmailUpdated: "email.updated",
    EmailDeleted: "email.deleted",
    CategoriesChanged: "categories.changed",
}


def encode_event(event: Event) -> dict[str, Any]:
    """The wire form of one event (a JSON-ready dict)."""
    body: dict[str, Any] = {"type": _TYPES[type(event)]}
    if isinstance(event, CategoriesChanged):
        body.update(change=event.change.value, category_ids=list(event.category_ids))
        return body
    if event.account_id is not None:
        body["account_id"] = event.account_id
    body["email_id"] = event.email_id
    if isinstance(event, EmailUpdated | EmailDeleted):
        body["before"] = _encode_row(event.before)
    if isinstance(event, EmailCreated | EmailUpdated):
        body["after"] = _encode_row(event.after)
    return body


def decode_batch(payload: object, max_batch: int) -> list[Event]:
    """Decode a JSON array of events; raise `InvalidEvent` for the first problem found."""
    if not isinstance(payload, list):
        raise InvalidEvent("an event batch must be a JSON array", field="events")
    if len(payload) > max_batch:
        raise InvalidEvent(
            f"batch of {len(payload)} events exceeds the maximum of {max_batch}; split it",
            field="events",
        )
    return [decode_event(item, f"events[{n}]") for n, item in enumerate(payload)]


def decode_event(obj: object, where: str = "event") -> Event:
    """Decode one event's wire form; raise `InvalidEvent` naming the offending field."""
    body = _object(obj, where)
    kind = body.get("type")
    if kind == "categories.changed":
        change = _field(body, where, "change", str)
        if change not in CategoryChange.__members__.values():
            raise InvalidEvent(
                "change must be created, renamed or deleted, got " + repr(change),
                field=f"{where}.change",
            )
        ids = _field(body, where, "category_ids", list)
        return CategoriesChanged(
            tuple(_id(value, f"{where}.category_ids[{n}]") for n, value in enumerate(ids)),
            CategoryChange(change),
        )
    if kind not in ("email.created", "email.updated", "email.deleted"):
        raise InvalidEvent(f"unknown event type {kind!r}", field=f"{where}.type")
    raw_account = body.get("account_id")
    account_id = None if raw_account is None else _id(raw_account, f"{where}.account_id")
    email_id = _id(body.get("email_id"), f"{where}.email_id")
    if kind == "email.created":
        return EmailCreated(account_id, email_id, _decode_row(body, where, "after"))
    before = _decode_row(body, where, "before")
    if kind == "email.deleted":
        return EmailDeleted(account_id, email_id, before)
    return EmailUpdated(account_id, email_id, before, _decode_row(body, where, "after"))


def _encode_row(row: EmailRow) -> dict[str, Any]:
    return {
        "category_id": row.category_id,
        "is_unread": row.is_unread,
        "is_auto_labeled": row.is_auto_labeled,
        "created_at": row.created_at.isoformat(),
    }


def _decode_row(body: Mapping[str, Any], where: str, name: str) -> EmailRow:
    path = f"{where}.{name}"
    row = _object(body.get(name), path)
    category_id = row.get("category_id")
    raw_created = _field(row, path, "created_at", str)
    try:
        created_at = datetime.fromisoformat(raw_created)
    except ValueError:
        created_at = None
    if created_at is None or created_at.tzinfo is None:
        raise InvalidEvent(
            f"created_at must be ISO-8601 with a UTC offset, got {raw_created!r}",
            field=f"{path}.created_at",
        )
    return EmailRow(
        category_id=None if category_id is None else _id(category_id, f"{path}.category_id"),
        is_unread=_field(row, path, "is_unread", bool),
        is_auto_labeled=_field(row, path, "is_auto_labeled", bool),
        created_at=created_at,
    )


def _object(value: object, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidEvent(f"{path} must be a JSON object", field=path)
    return value


def _field(body: Mapping[str, Any], where: str, name: str, kind: type) -> Any:
    value = body.get(name)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise InvalidEvent(
            f"{name} must be a {kind.__name__}, got {value!r}", field=f"{where}.{name}"
        )
    return value


def _id(value: object, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidEvent(f"{path} must be an integer id, got {value!r}", field=path)
    if not 0 <= value <= MAX_ID:
        raise InvalidEvent(f"{path} must be between 0 and 2**63-1, got {value}", field=path)
    return value
