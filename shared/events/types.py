"""Mutation events: typed, immutable, with a JSON wire form any producer can send.

Wire form (one JSON object per event; a batch is a JSON array of them):

    {"type": "email.created", "account_id": 3, "email_id": 10, "after": ROW, "txid": 7431}
    {"type": "email.updated", "account_id": 3, "email_id": 10, "before": ROW, "after": ROW}
    {"type": "email.deleted", "account_id": 3, "email_id": 10, "before": ROW}
    {"type": "categories.changed", "change": "created" | "renamed" | "deleted",
     "category_ids": [1, 2]}

    ROW = {"category_id": 2 | null, "is_unread": true, "is_auto_labeled": false,
           "created_at": "2026-11-24T12:00:00+00:00"}

Ids are integers from 0 to 2**63-1 (booleans are not ids); `created_at` is ISO-8601 with a UTC
offset. `txid` (optional on email events, null or absent for none) is the PostgreSQL transaction
id of the change (`SELECT pg_current_xact_id()` inside that transaction): an email event with one
updates the cached counts by deltas (docs/deltas.md), one without is recomputed from the table.
Fields not listed are ignored. Anything else raises `InvalidEvent` whose `field` names the
culprit, e.g. `events[3].after.is_unread`.

The Python constructors check the same rules with the same messages, the field named from the
event (`after.is_unread`), so what `decode_event` would reject can never be published either:
the decoder builds its events through those constructors and only adds the location.

A single-tenant app (no account column in the schema mapping) has no accounts: its email events
leave `account_id` out (null reads the same; None in the types). A multi-tenant deployment
rejects such an event when it is published, as a single-tenant one rejects an account id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from dashcache.errors import InvalidEvent

MAX_ID = 2**63 - 1


@dataclass(frozen=True, slots=True)
class EmailRow:
    """The counted fields of one email, as they were before or after a change.

    Checked when an event is built with it, so that the error names `before` or `after`.
    """

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
    txid: int | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        _check_email_event(self.account_id, self.email_id, after=self.after, txid=self.txid)


@dataclass(frozen=True, slots=True)
class EmailUpdated:
    """An email's counted fields may have changed (it stayed in the same account)."""

    account_id: int | None
    email_id: int
    before: EmailRow
    after: EmailRow
    txid: int | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        _check_email_event(
            self.account_id, self.email_id, before=self.before, after=self.after, txid=self.txid
        )


@dataclass(frozen=True, slots=True)
class EmailDeleted:
    """An email was deleted."""

    account_id: int | None
    email_id: int
    before: EmailRow
    txid: int | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        _check_email_event(self.account_id, self.email_id, before=self.before, txid=self.txid)


class CategoryChange(StrEnum):
    """What happened to the categories."""

    CREATED = "created"
    RENAMED = "renamed"
    DELETED = "deleted"


@dataclass(frozen=True, slots=True, init=False)
class CategoriesChanged:
    """Categories of the shared taxonomy were created, renamed or deleted.

    `category_ids` takes any sequence of ids (a list, a tuple, a range) and keeps it as a tuple;
    `change` takes a `CategoryChange` or its value (`"renamed"`) and keeps the member.
    """

    category_ids: tuple[int, ...]
    change: CategoryChange

    def __init__(
        self, category_ids: Sequence[int], change: CategoryChange | str = CategoryChange.CREATED
    ) -> None:
        object.__setattr__(self, "change", _change(change))
        object.__setattr__(self, "category_ids", _ids(category_ids))


CHANGES = ", ".join(repr(change.value) for change in CategoryChange)


def _ids(ids: object) -> tuple[int, ...]:
    """A sequence of ids as a tuple; else `InvalidEvent` naming the first bad one."""
    if not isinstance(ids, Sequence) or isinstance(ids, str | bytes | bytearray):
        raise InvalidEvent(
            f"category_ids must be a sequence of ids (a list or a tuple of integers), got {ids!r}",
            field="category_ids",
        )
    for n, value in enumerate(ids):
        check_id(value, f"category_ids[{n}]")
    return tuple(ids)


def _change(value: object) -> CategoryChange:
    """A `CategoryChange`, from the member or its value; else `InvalidEvent` listing them."""
    if isinstance(value, str) and value in CategoryChange.__members__.values():
        return CategoryChange(value)
    raise InvalidEvent(
        f"change must be one of {CHANGES} (a CategoryChange or its value), got {value!r}",
        field="change",
    )


Event = EmailCreated | EmailUpdated | EmailDeleted | CategoriesChanged

_TYPES: dict[type, str] = {
    EmailCreated: "email.created",
    EmailUpdated: "email.updated",
    EmailDeleted: "email.deleted",
    CategoriesChanged: "categories.changed",
}


def check_event(event: object) -> Event:
    """Return `event` if it is one of the event types, else raise `InvalidEvent`."""
    if type(event) not in _TYPES:
        names = ", ".join(kind.__name__ for kind in _TYPES)
        raise InvalidEvent(f"event must be one of {names}, got {event!r}", field="event")
    return event  # type: ignore[return-value]


def encode_event(event: Event) -> dict[str, Any]:
    """The wire form of one event (a JSON-ready dict)."""
    body: dict[str, Any] = {"type": _TYPES[type(event)]}
    if isinstance(event, CategoriesChanged):
        body.update(change=event.change.value, category_ids=list(event.category_ids))
        return body
    if event.account_id is not None:
        body["account_id"] = event.account_id
    body["email_id"] = event.email_id
    if event.txid is not None:
        body["txid"] = event.txid
    if isinstance(event, EmailUpdated | EmailDeleted):
        body["before"] = _encode_row(event.before)
    if isinstance(event, EmailCreated | EmailUpdated):
        body["after"] = _encode_row(event.after)
    return body


def decode_batch(payload: object, max_batch: int) -> list[Event]:
    """Decode a JSON array of events; raise `InvalidEvent` for the first problem found."""
    if not isinstance(payload, list):
        raise InvalidEvent(
            f"an event batch must be a JSON array of events, got {_kind_of(payload)}",
            field="events",
        )
    if len(payload) > max_batch:
        raise InvalidEvent(
            f"batch of {len(payload)} events exceeds the maximum of {max_batch}; split it",
            field="events",
        )
    return [decode_event(item, f"events[{n}]") for n, item in enumerate(payload)]


def decode_event(obj: object, where: str = "event") -> Event:
    """Decode one event's wire form; raise `InvalidEvent` naming the offending field."""
    try:
        return _decode(_object(obj, ""))
    except InvalidEvent as error:
        raise located(error, where) from None


def located(error: InvalidEvent, where: str) -> InvalidEvent:
    """The same error with its field (and the message, which starts with it) under `where`."""
    field = f"{where}.{error.field}" if error.field else where
    return InvalidEvent(f"{where}.{error}" if error.field else f"{where} {error}", field=field)


def _decode(body: Mapping[str, Any]) -> Event:
    kind = body.get("type")
    if kind == "categories.changed":
        change: Any = body.get("change")  # checked by the constructor, with its message
        return CategoriesChanged(_field(body, "", "category_ids", list), change)
    if kind not in ("email.created", "email.updated", "email.deleted"):
        kinds = ", ".join(repr(name) for name in _TYPES.values())
        raise InvalidEvent(f"type must be one of {kinds}, got {kind!r}", field="type")
    raw_account = body.get("account_id")
    account_id = None if raw_account is None else check_id(raw_account, "account_id")
    email_id = check_id(body.get("email_id"), "email_id")
    txid = body.get("txid")
    if kind == "email.created":
        return EmailCreated(account_id, email_id, _decode_row(body, "after"), txid=txid)
    before = _decode_row(body, "before")
    if kind == "email.deleted":
        return EmailDeleted(account_id, email_id, before, txid=txid)
    return EmailUpdated(account_id, email_id, before, _decode_row(body, "after"), txid=txid)


def _encode_row(row: EmailRow) -> dict[str, Any]:
    return {
        "category_id": row.category_id,
        "is_unread": row.is_unread,
        "is_auto_labeled": row.is_auto_labeled,
        "created_at": row.created_at.isoformat(),
    }


def _decode_row(body: Mapping[str, Any], name: str) -> EmailRow:
    row = _object(body.get(name), name)
    raw_created = _field(row, name, "created_at", str)
    try:
        created_at: Any = datetime.fromisoformat(raw_created)
    except ValueError:
        created_at = raw_created
    fields: dict[str, Any] = {flag: row.get(flag) for flag in ("is_unread", "is_auto_labeled")}
    decoded = EmailRow(row.get("category_id"), created_at=created_at, **fields)
    _check_row(decoded, name)
    return decoded


def _check_email_event(
    account_id: object, email_id: object, txid: object = None, **rows: object
) -> None:
    if account_id is not None:  # single-tenant: no account (publish checks the tenancy)
        check_id(account_id, "account_id")
    check_id(email_id, "email_id")
    if txid is not None:
        check_id(txid, "txid")
    for name, row in rows.items():
        _check_row(row, name)


def _check_row(row: object, path: str) -> None:
    if not isinstance(row, EmailRow):
        raise InvalidEvent(f"{path} must be an EmailRow, got {row!r}", field=path)
    if row.category_id is not None:
        check_id(row.category_id, f"{path}.category_id")
    for name in ("is_unread", "is_auto_labeled"):
        value = getattr(row, name)
        if not isinstance(value, bool):
            raise InvalidEvent(
                f"{path}.{name} must be a bool, got {value!r}", field=f"{path}.{name}"
            )
    created_at = row.created_at
    if isinstance(created_at, datetime) and created_at.utcoffset() is not None:
        return
    shown = created_at.isoformat() if isinstance(created_at, datetime) else created_at
    raise InvalidEvent(
        f"{path}.created_at must be ISO-8601 with a UTC offset, got {shown!r}",
        field=f"{path}.created_at",
    )


def _object(value: object, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidEvent(
            f"{path} must be a JSON object, got {_kind_of(value)}".lstrip(), field=path or None
        )
    return value


def _kind_of(value: object) -> str:
    """What a value is, for a refusal: its JSON kind and, when short, itself."""
    shown = repr(value)
    return f"{type(value).__name__} {shown}" if len(shown) <= 80 else type(value).__name__


def _field(body: Mapping[str, Any], where: str, name: str, kind: type) -> Any:
    value = body.get(name)
    path = f"{where}.{name}" if where else name
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise InvalidEvent(f"{path} must be a {kind.__name__}, got {value!r}", field=path)
    return value


def check_id(value: object, path: str) -> int:
    """Return `value` if it is an id (an int from 0 to 2**63-1, not a bool), else raise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidEvent(f"{path} must be an integer id, got {value!r}", field=path)
    if not 0 <= value <= MAX_ID:
        raise InvalidEvent(f"{path} must be between 0 and 2**63-1, got {value}", field=path)
    return value
