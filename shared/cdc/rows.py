"""Replicated rows of the mapped tables as event rows: pure text parsing, no database.

pgoutput sends every value in PostgreSQL's text output: integers as digits, booleans as `t` or
`f`, timestamptz as `2026-12-04 03:52:10.123456+00` (DateStyle ISO). The positions of the mapped
columns are found once per Relation message (`EmailColumns.of`, `CategoryColumns.of`); a row
that cannot become an event raises `BadRow` naming the column and value, to be dead-lettered.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from dashcache.cdc.pgoutput import UNCHANGED, Relation, Row
from dashcache.errors import BadRow, InvalidEvent, SchemaError
from dashcache.events.types import MAX_ID, EmailRow, check_id
from dashcache.schema.mapping import Flag, SchemaMapping, When

MAX_ID_DIGITS = len(str(MAX_ID))
"""Longer digit strings are out of range, whatever they say."""


@dataclass(frozen=True, slots=True)
class Position:
    """Where a mapped column sits in a relation's rows, and its mapping key for messages."""

    index: int
    name: str
    key: str


@dataclass(frozen=True, slots=True)
class FlagPosition:
    """A counted flag's column, and when it counts as set."""

    column: Position
    when: When


@dataclass(frozen=True, slots=True)
class EmailColumns:
    """The mapped email columns' positions in one Relation; `account` None: single-tenant."""

    id: Position
    account: Position | None
    category: Position
    created_at: Position
    unread: FlagPosition
    auto_labeled: FlagPosition

    @classmethod
    def of(cls, mapping: SchemaMapping, relation: Relation) -> EmailColumns:
        """Positions of `mapping`'s email columns; `SchemaError` names a column not there."""
        emails = mapping.emails
        return cls(
            id=_position(relation, emails.id, "emails.id"),
            account=None
            if emails.account is None
            else _position(relation, emails.account, "emails.account"),
            category=_position(relation, emails.category, "emails.category"),
            created_at=_position(relation, emails.created_at, "emails.created_at"),
            unread=_flag(relation, emails.unread, "emails.unread"),
            auto_labeled=_flag(relation, emails.auto_labeled, "emails.auto_labeled"),
        )


@dataclass(frozen=True, slots=True)
class CategoryColumns:
    """The mapped category columns' positions in one Relation."""

    id: Position
    name: Position

    @classmethod
    def of(cls, mapping: SchemaMapping, relation: Relation) -> CategoryColumns:
        """Positions of `mapping`'s category columns; `SchemaError` names a column not there."""
        categories = mapping.categories
        return cls(
            id=_position(relation, categories.id, "categories.id"),
            name=_position(relation, categories.name, "categories.name"),
        )


def email_row(columns: EmailColumns, row: Row) -> tuple[int | None, int, EmailRow]:
    """(account id or None when single-tenant, email id, counted fields) of one emails row."""
    account = None if columns.account is None else _id(row, columns.account)
    category = _text(row, columns.category)
    return (
        account,
        _id(row, columns.id),
        EmailRow(
            category_id=None if category is None else _parse_id(category, columns.category),
            is_unread=_flag_value(row, columns.unread),
            is_auto_labeled=_flag_value(row, columns.auto_labeled),
            created_at=_timestamptz(row, columns.created_at),
        ),
    )


def category_of(columns: CategoryColumns, row: Row) -> tuple[int, str | None]:
    """(id, name) of one categories row; the name is None when NULL or not sent (the old key
    of a delete under the default replica identity carries only the id)."""
    return _id(row, columns.id), _text(row, columns.name)


def _position(relation: Relation, column: str, key: str) -> Position:
    for index, candidate in enumerate(relation.columns):
        if candidate.name == column:
            return Position(index, column, key)
    table = f"{relation.namespace}.{relation.name}" if relation.namespace else relation.name
    raise SchemaError(f'{key}: column "{column}" not found in replicated table "{table}"')


def _flag(relation: Relation, flag: Flag, key: str) -> FlagPosition:
    return FlagPosition(_position(relation, flag.column, key), flag.when)


def _text(row: Row, at: Position) -> str | None:
    if at.index >= len(row):
        raise BadRow(
            f'{at.key}: the row has {len(row)} values, none for column "{at.name}"',
            column=at.name,
            value=None,
        )
    value = row[at.index]
    if value is UNCHANGED:
        raise BadRow(
            f'{at.key}: column "{at.name}" was not sent (an unchanged TOASTed value)',
            column=at.name,
            value=value,
        )
    return value


def _id(row: Row, at: Position) -> int:
    text = _text(row, at)
    if text is None:
        raise BadRow(f'{at.key}: column "{at.name}" is NULL', column=at.name, value=None)
    return _parse_id(text, at)


def _parse_id(text: str, at: Position) -> int:
    digits = text.removeprefix("-")
    if not (digits.isascii() and digits.isdigit()):
        raise BadRow(
            f'{at.key}: column "{at.name}" holds {text!r}, not an integer',
            column=at.name,
            value=text,
        )
    if len(digits) > MAX_ID_DIGITS:  # int() refuses texts of thousands of digits
        raise BadRow(
            f'{at.key}: column "{at.name}" holds a {len(digits)}-digit integer, out of range '
            "(0 to 2**63-1)",
            column=at.name,
            value=text,
        )
    try:
        return check_id(int(text), at.name)
    except InvalidEvent as error:
        raise BadRow(f"{at.key}: {error}", column=at.name, value=text) from None


def _flag_value(row: Row, flag: FlagPosition) -> bool:
    at = flag.column
    text = _text(row, at)
    if flag.when == "null":
        return text is None
    if flag.when == "not_null":
        return text is not None
    if text is None:
        return False
    if text not in ("t", "f"):
        raise BadRow(
            f'{at.key}: column "{at.name}" holds {text!r}, not a boolean (t or f)',
            column=at.name,
            value=text,
        )
    return (text == "t") == (flag.when == "true")


def _timestamptz(row: Row, at: Position) -> datetime:
    text = _text(row, at)
    if text is None:
        raise BadRow(f'{at.key}: column "{at.name}" is NULL', column=at.name, value=None)
    try:
        parsed = datetime.fromisoformat(text)
        if parsed.utcoffset() is not None:
            return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        pass
    raise BadRow(
        f'{at.key}: column "{at.name}" holds {text!r}, not a timestamp with a UTC offset '
        "(ISO DateStyle)",
        column=at.name,
        value=text,
    )
