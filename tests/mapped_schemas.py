"""Test schemas with other names for everything, in PostgreSQL schemas of their own.

Each variant declares the app's tables itself (plain SQLAlchemy DDL, not dashcache's), writes the
mapping file that describes them, and knows the truth by brute force over the rows it inserted.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    Table,
    Text,
    insert,
    text,
)
from sqlalchemy.orm import DeclarativeBase

from dashcache import clock
from dashcache.keys import Scope
from dashcache.stats import growth_percentage
from dashcache.windows import floor_minute

DAY = timedelta(days=1)
AGES = (1, 3, 5, 9, 11, 13, 20)
"""Email ages in days, each well inside one week window (a test run never crosses a boundary)."""


@dataclass(frozen=True)
class Variant:
    """One app schema: names, flag forms, tenancy, and its mapping file."""

    label: str
    schema: str
    emails: str
    categories: str
    id: str
    account: str | None
    category: str
    created_at: str
    unread: str
    unread_when: str
    auto: str
    auto_when: str
    cat_id: str
    cat_name: str

    def toml(self) -> str:
        """The mapping file of this schema."""

        def flag(column: str, when: str) -> str:
            return _string(column) if when == "true" else (
                f"{{ column = {_string(column)}, when = {_string(when)} }}"
            )  # fmt: skip

        lines = [
            "[emails]",
            f"table = {_string(_qualified(self.schema, self.emails))}",
            f"id = {_string(self.id)}",
        ]
        if self.account is not None:
            lines.append(f"account = {_string(self.account)}")
        lines += [
            f"category = {_string(self.category)}",
            f"created_at = {_string(self.created_at)}",
            f"unread = {flag(self.unread, self.unread_when)}",
            f"auto_labeled = {flag(self.auto, self.auto_when)}",
            "[categories]",
            f"table = {_string(_qualified(self.schema, self.categories))}",
            f"id = {_string(self.cat_id)}",
            f"name = {_string(self.cat_name)}",
        ]
        return "\n".join(lines) + "\n"


def _qualified(schema: str, table: str) -> str:
    """`schema.table`, double-quoting a part that holds a dot or starts with a quote."""

    def part(name: str) -> str:
        if "." in name or name.startswith('"'):
            return '"' + name.replace('"', '""') + '"'
        return name

    return f"{part(schema)}.{part(table)}"


def _string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


MULTI = Variant(
    "multi-tenant, boolean and when=false flags",
    schema="mail",
    emails="messages",
    categories="labels",
    id="message_pk",
    account="owner_id",
    category="label_id",
    created_at="received_at",
    unread="is_unread",
    unread_when="true",
    auto="is_manual",
    auto_when="false",
    cat_id="label_pk",
    cat_name="title",
)
HOSTILE = Variant(
    "hostile identifiers, when=null and boolean flags",
    schema='post "box".ü',
    emails='mes"sages ✉',
    categories='la bels"',
    id="Id",
    account="Owner Id",
    category='lab"el',
    created_at="réçu à",
    unread="read at",
    unread_when="null",
    auto="auto tagged ☑",
    auto_when="true",
    cat_id="ID",
    cat_name='ti"tle',
)
SINGLE = Variant(
    "single-tenant (the email app's shape), when=false and when=not_null flags",
    schema="app",
    emails="emails",
    categories="categories",
    id="id",
    account=None,
    category="category_id",
    created_at="created_at",
    unread="is_read",
    unread_when="false",
    auto="category_id",
    auto_when="not_null",
    cat_id="id",
    cat_name="name",
)
BY_CATEGORY = Variant(
    "multi-tenant, auto-labeled when the category column is not null",
    schema="inbox",
    emails="mails",
    categories="folders",
    id="id",
    account="user_id",
    category="category_id",
    created_at="created_at",
    unread="is_unread",
    unread_when="true",
    auto="category_id",
    auto_when="not_null",
    cat_id="id",
    cat_name="name",
)
"""The email app's own rule: an email is auto-labeled when it has a category (one column, two
roles)."""
VARIANTS = (MULTI, HOSTILE, SINGLE, BY_CATEGORY)


@dataclass
class Email:
    """One email of a test schema, in the counted terms (what the truth is computed from)."""

    id: int
    account: int | None
    category: int | None
    unread: bool
    auto_labeled: bool
    created_at: datetime


@dataclass
class AppSchema:
    """A variant created in the database: its tables, its mapping file, its rows."""

    variant: Variant
    engine: Engine
    mapping_file: str
    emails: Table
    categories: Table
    names: dict[int, str]
    rows: dict[int, Email] = field(default_factory=dict)

    def column_values(self, email: Email) -> dict[str, Any]:
        """The row as the app stores it (flags in the variant's own form)."""
        v = self.variant
        values: dict[str, Any] = {
            v.id: email.id,
            v.category: email.category,
            v.created_at: email.created_at,
            v.unread: _store(email.unread, v.unread_when),
        }
        if v.auto != v.category:
            values[v.auto] = _store(email.auto_labeled, v.auto_when)
        if v.account is not None:
            values[v.account] = email.account
        return values

    def add(self, emails: list[Email]) -> None:
        """Insert emails directly (no events)."""
        with self.engine.begin() as conn:
            conn.execute(insert(self.emails), [self.column_values(e) for e in emails])
        self.rows.update({e.id: e for e in emails})

    def scopes(self) -> list[Scope]:
        """Every scope of this schema: all accounts, then each account with emails."""
        accounts = {e.account for e in self.rows.values() if e.account is not None}
        return [None, *sorted(accounts)]

    def auto_labeled(self, email: Email) -> bool:
        """Whether an email counts as auto-labeled (by its category, when the flag is that
        column's IS NOT NULL)."""
        if self.variant.auto == self.variant.category:
            return email.category is not None
        return email.auto_labeled

    def truth(self, scope: Scope, now: datetime) -> tuple[dict[str, Any], list[list[Any]]]:
        """Aggregates and breakdown of a scope by brute force over the inserted rows."""
        chosen = [e for e in self.rows.values() if scope is None or e.account == scope]
        start = floor_minute(now)  # the windows move by whole minutes (docs/statistics.md)
        this_week = sum(1 for e in chosen if start - 7 * DAY <= e.created_at < now)
        previous = sum(1 for e in chosen if start - 14 * DAY <= e.created_at < start - 7 * DAY)
        aggregates = {
            "total_emails": len(chosen),
            "auto_labeled": sum(self.auto_labeled(e) for e in chosen),
            "categories_count": len(self.names),
            "unread_count": sum(e.unread for e in chosen),
            "weekly_growth": {
                "emails": this_week,
                "previous": previous,
                "percentage": growth_percentage(this_week, previous),
            },
        }
        counts = {name: sum(e.category == cid for e in chosen) for cid, name in self.names.items()}
        breakdown = sorted(counts.items(), key=lambda pair: (-pair[1], pair[0]))
        return aggregates, [list(pair) for pair in breakdown]


def _store(flag: bool, when: str) -> object:
    if when == "true":
        return flag
    if when == "false":
        return not flag
    if when == "not_null":
        return clock.now() if flag else None
    return None if flag else clock.now()


def random_emails(count: int, first_id: int, accounts: int | None, categories: int) -> list[Email]:
    """Reproducible emails spread over accounts (None: single-tenant), categories and ages."""
    rng = random.Random(first_id)
    now = clock.now()
    return [
        Email(
            id=first_id + n,
            account=None if accounts is None else rng.randint(1, accounts),
            category=rng.choice([None, *range(1, categories + 1)]),
            unread=rng.random() < 0.4,
            auto_labeled=rng.random() < 0.6,
            created_at=now - rng.choice(AGES) * DAY,
        )
        for n in range(count)
    ]


def declare(variant: Variant, metadata: MetaData) -> tuple[Table, Table]:
    """The app's own tables of a variant (its DDL, as the app would have it)."""
    v = variant
    categories = Table(
        v.categories,
        metadata,
        Column(v.cat_id, Integer, primary_key=True, autoincrement=False),
        Column(v.cat_name, Text, nullable=False),
        schema=v.schema,
    )
    timestamp = DateTime(timezone=True)
    flag_type = {"true": Boolean, "false": Boolean, "null": timestamp, "not_null": timestamp}
    nullable = ("null", "not_null")
    columns = [
        Column(v.id, BigInteger, primary_key=True, autoincrement=False),
        Column(v.category, Integer, ForeignKey(categories.c[v.cat_id]), nullable=True),
        Column(v.created_at, DateTime(timezone=True), nullable=False),
        Column(v.unread, flag_type[v.unread_when], nullable=v.unread_when in nullable),
        Column("subject", Text),  # a column dashcache does not map
    ]
    if v.auto != v.category:
        columns.insert(4, Column(v.auto, flag_type[v.auto_when], nullable=v.auto_when in nullable))
    if v.account is not None:
        columns.insert(1, Column(v.account, BigInteger, nullable=False))
    return Table(v.emails, metadata, *columns, schema=v.schema), categories


@contextmanager
def app_schema(
    engine: Engine, variant: Variant, directory: Path, category_names: list[str]
) -> Iterator[AppSchema]:
    """Create the variant's schema and tables with categories; drop the schema afterwards."""
    metadata = MetaData()
    emails, categories = declare(variant, metadata)
    quoted = engine.dialect.identifier_preparer.quote_identifier(variant.schema)
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {quoted} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {quoted}"))
    metadata.create_all(engine)
    names = dict(enumerate(category_names, start=1))
    with engine.begin() as conn:
        rows = [{variant.cat_id: cid, variant.cat_name: name} for cid, name in names.items()]
        conn.execute(insert(categories), rows)
    path = directory / "schema.toml"
    path.write_text(variant.toml(), encoding="utf-8")
    try:
        yield AppSchema(variant, engine, str(path), emails, categories, names)
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {quoted} CASCADE"))


def host_classes(schema: AppSchema) -> tuple[type[Any], type[Any]]:
    """The app's own ORM classes on its tables (attribute names of its own, no dashcache base)."""
    v = schema.variant

    class Base(DeclarativeBase):
        """The app's own declarative base."""

    attributes = {
        "pk": v.id,
        "label": v.category,
        "received": v.created_at,
        "unread_raw": v.unread,
        "subject": "subject",
    }
    if v.auto != v.category:
        attributes["auto_raw"] = v.auto
    if v.account is not None:
        attributes["owner"] = v.account
    message = type(
        "Message",
        (Base,),
        {
            "__table__": schema.emails,
            **{key: schema.emails.c[name] for key, name in attributes.items()},
        },
    )
    label = type(
        "Label",
        (Base,),
        {
            "__table__": schema.categories,
            "pk": schema.categories.c[v.cat_id],
            "title": schema.categories.c[v.cat_name],
        },
    )
    return message, label
