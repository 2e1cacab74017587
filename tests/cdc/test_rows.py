"""Replicated rows as event rows: every mapping form, and every row that cannot become an event."""

from __future__ import annotations

import contextlib
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dashcache.cdc.pgoutput import UNCHANGED, Column, Delete, Insert, Relation, Row, Update, decode
from dashcache.cdc.rows import CategoryColumns, EmailColumns, category_of, email_row
from dashcache.errors import BadRow, DashcacheError, SchemaError
from dashcache.events.types import EmailRow
from dashcache.schema.mapping import DEMO_MAPPING, SchemaMapping, parse_mapping
from tests.cdc.captured import CAPTURED

WHEN = datetime(2026, 12, 4, 3, 52, 10, 123456, tzinfo=UTC)
WHEN_TEXT = "2026-12-04 03:52:10.123456+00"

SINGLE_TENANT = parse_mapping(
    {
        "emails": {
            "table": "app.messages",
            "id": "message_id",
            "category": "label_id",
            "created_at": "received_at",
            "unread": {"column": "read_at", "when": "null"},
            "auto_labeled": {"column": "labeled_by_hand", "when": "false"},
        },
        "categories": {"table": "app.labels", "id": "label_id", "name": "title"},
    },
    source="single-tenant.toml",
)


def relation(name: str, *columns: str) -> Relation:
    """A Relation with text-typed columns in the given order."""
    return Relation(16385, "public", name, "f", tuple(Column(False, c, 25, -1) for c in columns))


DEMO_RELATION = relation(
    "emails",
    "id",
    "subject",
    "account_id",
    "category_id",
    "created_at",
    "is_unread",
    "is_auto_labeled",
)
MESSAGES = relation(
    "messages", "received_at", "read_at", "labeled_by_hand", "label_id", "message_id"
)


def demo(**values: str | object | None) -> Row:
    """A demo emails row with defaults, any column overridden by name."""
    row: dict[str, object] = {
        "id": "10",
        "subject": "hello",
        "account_id": "3",
        "category_id": "2",
        "created_at": WHEN_TEXT,
        "is_unread": "t",
        "is_auto_labeled": "f",
    }
    row.update(values)
    return tuple(row[c.name] for c in DEMO_RELATION.columns)  # type: ignore[misc]


def test_boolean_flags_multi_tenant() -> None:
    """Boolean flag columns read 't'/'f'; the account and ids are ints; created_at aware UTC."""
    columns = EmailColumns.of(DEMO_MAPPING, DEMO_RELATION)
    assert email_row(columns, demo()) == (3, 10, EmailRow(2, True, False, WHEN))
    assert email_row(columns, demo(is_unread="f", is_auto_labeled="t")) == (
        3,
        10,
        EmailRow(2, False, True, WHEN),
    )


def test_null_boolean_flag_is_not_set() -> None:
    """A NULL in a boolean flag column counts as not set, as `column IS true` does."""
    columns = EmailColumns.of(DEMO_MAPPING, DEMO_RELATION)
    row = email_row(columns, demo(is_unread=None, is_auto_labeled=None))[2]
    assert (row.is_unread, row.is_auto_labeled) == (False, False)


def test_null_category_is_uncategorised() -> None:
    """A NULL category is an uncategorised email, not a bad row."""
    columns = EmailColumns.of(DEMO_MAPPING, DEMO_RELATION)
    assert email_row(columns, demo(category_id=None))[2].category_id is None


@pytest.mark.parametrize(
    ("read_at", "by_hand", "unread", "auto_labeled"),
    [
        (None, "f", True, True),
        ("2026-12-01 00:00:00+00", "t", False, False),
        (None, None, True, False),
        ("2026-12-01 00:00:00+00", "f", False, True),
    ],
)
def test_null_and_false_flags_single_tenant(
    read_at: str | None, by_hand: str | None, unread: bool, auto_labeled: bool
) -> None:
    """when="null" is set by a NULL (any other value clears it); when="false" by 'f' only;
    a single-tenant row has no account; columns are found wherever the relation puts them."""
    columns = EmailColumns.of(SINGLE_TENANT, MESSAGES)
    row = ("2026-12-04 04:52:10.123456+01", read_at, by_hand, "7", "99")
    assert email_row(columns, row) == (None, 99, EmailRow(7, unread, auto_labeled, WHEN))


BY_CATEGORY = parse_mapping(
    {
        "emails": {
            "table": "app.messages",
            "id": "message_id",
            "category": "label_id",
            "created_at": "received_at",
            "unread": {"column": "read_at", "when": "null"},
            "auto_labeled": {"column": "label_id", "when": "not_null"},
        },
        "categories": {"table": "app.labels", "id": "label_id", "name": "title"},
    },
    source="by-category.toml",
)


@pytest.mark.parametrize(
    ("label", "category", "auto_labeled"), [("7", 7, True), (None, None, False)]
)
def test_not_null_flag_on_the_category_column(
    label: str | None, category: int | None, auto_labeled: bool
) -> None:
    """when="not_null" is set by any value of the column, here the category itself: one column
    read for two roles."""
    columns = EmailColumns.of(BY_CATEGORY, MESSAGES)
    row = ("2026-12-04 04:52:10.123456+01", None, "t", label, "99")
    assert email_row(columns, row) == (None, 99, EmailRow(category, True, auto_labeled, WHEN))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-04 03:52:10.123456+00", WHEN),
        ("2026-12-04 09:22:10.123456+05:30", WHEN),
        ("2026-12-03 22:52:10.123456-05", WHEN),
        ("2026-12-04 03:52:10+00", WHEN.replace(microsecond=0)),
        (
            "1900-01-01 00:00:00+05:53:28",
            datetime(1900, 1, 1, tzinfo=timezone(timedelta(seconds=21208))),
        ),
    ],
)
def test_timestamptz_text(text: str, expected: datetime) -> None:
    """timestamptz text in any offset (also with seconds) becomes the same instant, in UTC."""
    columns = EmailColumns.of(DEMO_MAPPING, DEMO_RELATION)
    created_at = email_row(columns, demo(created_at=text))[2].created_at
    assert created_at == expected
    assert created_at.tzinfo is UTC


@pytest.mark.parametrize(
    ("values", "column", "match"),
    [
        ({"account_id": None}, "account_id", "is NULL"),
        ({"account_id": "-1"}, "account_id", "between 0 and 2"),
        ({"account_id": "9223372036854775808"}, "account_id", "between 0 and 2"),
        ({"account_id": "1" * 5000}, "account_id", "5000-digit integer, out of range"),
        ({"account_id": "-" + "1" * 5000}, "account_id", "5000-digit integer, out of range"),
        ({"account_id": "3.0"}, "account_id", "not an integer"),
        ({"account_id": " 3"}, "account_id", "not an integer"),
        ({"account_id": "٣"}, "account_id", "not an integer"),
        ({"id": None}, "id", "is NULL"),
        ({"id": "-10"}, "id", "between 0 and 2"),
        ({"category_id": "-2"}, "category_id", "between 0 and 2"),
        ({"category_id": "x"}, "category_id", "not an integer"),
        ({"is_unread": "true"}, "is_unread", "not a boolean"),
        ({"is_auto_labeled": "1"}, "is_auto_labeled", "not a boolean"),
        ({"created_at": None}, "created_at", "is NULL"),
        ({"created_at": "2026-12-04 03:52:10"}, "created_at", "UTC offset"),
        ({"created_at": "infinity"}, "created_at", "UTC offset"),
        ({"created_at": "0044-03-15 00:00:00+00 BC"}, "created_at", "UTC offset"),
        ({"created_at": "0001-01-01 00:00:00+05"}, "created_at", "UTC offset"),
        ({"created_at": "12/04/2026 03:52:10 UTC"}, "created_at", "UTC offset"),
        ({"is_unread": UNCHANGED}, "is_unread", "unchanged TOASTed"),
        ({"account_id": UNCHANGED}, "account_id", "unchanged TOASTed"),
    ],
)
def test_bad_email_rows(values: dict[str, object], column: str, match: str) -> None:
    """A row that cannot become an event raises BadRow naming the column and its value."""
    columns = EmailColumns.of(DEMO_MAPPING, DEMO_RELATION)
    with pytest.raises(BadRow, match=match) as raised:
        email_row(columns, demo(**values))
    assert raised.value.column == column
    assert raised.value.value == values[column]
    assert column in str(raised.value)
    assert isinstance(raised.value, DashcacheError)


def test_unchanged_null_flag_is_refused() -> None:
    """An unchanged TOASTed value in a when="null" flag column is refused, not guessed."""
    columns = EmailColumns.of(SINGLE_TENANT, MESSAGES)
    row = (WHEN_TEXT, UNCHANGED, "f", "7", "99")
    with pytest.raises(BadRow, match="read_at"):
        email_row(columns, row)


def test_short_row_is_refused() -> None:
    """A row with fewer values than the mapped positions need raises BadRow, not IndexError."""
    columns = EmailColumns.of(DEMO_MAPPING, DEMO_RELATION)
    with pytest.raises(BadRow, match="is_auto_labeled"):
        email_row(columns, demo()[:-1])


@pytest.mark.parametrize(
    ("mapping", "missing", "key"),
    [
        (DEMO_MAPPING, "account_id", "emails.account"),
        (DEMO_MAPPING, "is_unread", "emails.unread"),
        (SINGLE_TENANT, "read_at", "emails.unread"),
        (SINGLE_TENANT, "labeled_by_hand", "emails.auto_labeled"),
        (SINGLE_TENANT, "message_id", "emails.id"),
    ],
)
def test_missing_email_column_is_named(mapping: SchemaMapping, missing: str, key: str) -> None:
    """A mapped column absent from the replicated table raises SchemaError naming it."""
    source = DEMO_RELATION if mapping is DEMO_MAPPING else MESSAGES
    names = [c.name for c in source.columns if c.name != missing]
    with pytest.raises(SchemaError, match=re.escape(f'{key}: column "{missing}" not found')):
        EmailColumns.of(mapping, relation(source.name, *names))


def test_category_rows() -> None:
    """A categories row gives its id and name; a key-only old row (name NULL) its id."""
    columns = CategoryColumns.of(SINGLE_TENANT, relation("labels", "title", "label_id"))
    assert category_of(columns, ("Promotions", "4")) == (4, "Promotions")
    assert category_of(columns, (None, "4")) == (4, None)
    demo_columns = CategoryColumns.of(DEMO_MAPPING, relation("categories", "id", "name"))
    assert category_of(demo_columns, ("1", "Inbox")) == (1, "Inbox")


@pytest.mark.parametrize(
    ("row", "column", "match"),
    [
        ((None, "x"), "id", "is NULL"),
        (("-4", "x"), "id", "between 0 and 2"),
        (("four", "x"), "id", "not an integer"),
        (("4", UNCHANGED), "name", "unchanged TOASTed"),
    ],
)
def test_bad_category_rows(row: Row, column: str, match: str) -> None:
    """A categories row with a bad id (or an unsent name) raises BadRow naming the column."""
    columns = CategoryColumns.of(DEMO_MAPPING, relation("categories", "id", "name"))
    with pytest.raises(BadRow, match=match) as raised:
        category_of(columns, row)
    assert raised.value.column == column


def test_missing_category_column_is_named() -> None:
    """A categories relation without the mapped name column raises SchemaError naming it."""
    with pytest.raises(SchemaError, match=re.escape('categories.name: column "title" not found')):
        CategoryColumns.of(SINGLE_TENANT, relation("labels", "label_id", "name"))


def test_real_stream_rows() -> None:
    """The emails and categories rows of a captured PostgreSQL 15 stream become the rows that
    were written, through the demo mapping."""
    messages = [decode(bytes.fromhex(payload)) for payload in CAPTURED]
    relations = {m.name: m for m in messages if isinstance(m, Relation)}
    emails = EmailColumns.of(DEMO_MAPPING, relations["emails"])
    categories = CategoryColumns.of(DEMO_MAPPING, relations["categories"])
    email_rows = []
    for message in messages:
        if isinstance(message, Insert | Update) and message.oid == relations["emails"].oid:
            email_rows.append(email_row(emails, message.new))
        if isinstance(message, Update | Delete) and message.oid == relations["emails"].oid:
            assert message.old is not None
            email_rows.append(email_row(emails, message.old))
    second = datetime(2026, 12, 4, 3, 52, 11, tzinfo=UTC)
    assert email_rows == [
        (3, 10, EmailRow(1, True, False, WHEN)),
        (3, 11, EmailRow(None, False, True, second)),
        (3, 10, EmailRow(1, False, False, WHEN)),
        (3, 10, EmailRow(1, True, False, WHEN)),
        (3, 11, EmailRow(None, False, True, second)),
    ]
    named = [
        category_of(categories, m.new)
        for m in messages
        if isinstance(m, Insert | Update) and m.oid == relations["categories"].oid
    ]
    assert named == [(1, "Inbox"), (1, "Promotions")]


values = st.one_of(
    st.none(),
    st.just(UNCHANGED),
    st.text(max_size=40),
    st.integers().map(str),
    st.sampled_from(["t", "f", WHEN_TEXT, "infinity", "-0", "9223372036854775807", "9" * 5000]),
)


@given(row=st.tuples(*[values] * len(DEMO_RELATION.columns)))
def test_any_email_row_converts_or_raises_bad_row(row: Row) -> None:
    """Any values in any mapped column give an event row or BadRow, never another error."""
    columns = EmailColumns.of(DEMO_MAPPING, DEMO_RELATION)
    with contextlib.suppress(BadRow):
        email_row(columns, row)


@given(row=st.tuples(*[values] * len(MESSAGES.columns)))
def test_any_single_tenant_row_converts_or_raises_bad_row(row: Row) -> None:
    """The same holds with the null and false flag forms of a single-tenant mapping."""
    columns = EmailColumns.of(SINGLE_TENANT, MESSAGES)
    with contextlib.suppress(BadRow):
        email_row(columns, row)
