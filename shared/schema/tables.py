"""The mapped tables as SQLAlchemy Core objects: every dashcache query is built from these.

Names come from the mapping and reach SQL only through SQLAlchemy's identifier quoting, never
pasted into a statement. An engine carries its tables (`bind_tables`), so the passes that take
an engine or a session read them from it (`tables_of`); an engine without any reads the demo
schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    Connection,
    Dialect,
    Engine,
    Index,
    MetaData,
    Table,
    Text,
)
from sqlalchemy.orm import Session
from sqlalchemy.schema import CreateIndex
from sqlalchemy.types import NullType, TypeEngine

from dashcache.errors import InvalidArgument
from dashcache.models import UTCDateTime
from dashcache.schema.mapping import DEMO_MAPPING, Flag, SchemaMapping

EXECUTION_OPTION = "dashcache_tables"
"""The engine execution option that carries an engine's `MappedTables`."""
INDEX_NAME = "ix_dashcache_counts"
CREATED_INDEX_NAME = "ix_dashcache_created"


@dataclass(frozen=True, slots=True)
class MappedTables:
    """The emails and categories tables of a mapping, with each counted column by its role."""

    mapping: SchemaMapping
    emails: Table
    categories: Table
    email_id: Column[int]
    account: Column[int] | None
    category: Column[int]
    created_at: Column[object]
    unread: ColumnElement[bool]
    auto_labeled: ColumnElement[bool]
    category_id: Column[int]
    category_name: Column[str]

    def scope_filter(self, account_id: int | None) -> list[ColumnElement[bool]]:
        """The WHERE conditions of one scope (none for all accounts)."""
        if account_id is None:
            return []
        if self.account is None:
            raise InvalidArgument(single_tenant_problem(account_id))
        return [self.account == account_id]

    def range_filter(self, low: int, high: int) -> list[ColumnElement[bool]]:
        """The WHERE conditions of the account ids from `low` up to, not including, `high`."""
        if self.account is None:
            raise InvalidArgument(single_tenant_problem(low))
        return [self.account >= low, self.account < high]

    def accounts_filter(self, account_ids: list[int]) -> ColumnElement[bool]:
        """The WHERE condition of some accounts."""
        if self.account is None:
            raise InvalidArgument(single_tenant_problem(account_ids))
        return self.account.in_(account_ids)


def single_tenant_problem(account_id: object) -> str:
    """Why an account id is refused when the mapping has no account column."""
    return (
        "account_id must be None: the schema mapping has no [emails].account column, so all "
        f"accounts (None) is the only scope (single-tenant), got {account_id!r}"
    )


def build_tables(mapping: SchemaMapping) -> MappedTables:
    """Core `Table` objects of a mapping, in a metadata of their own."""
    emails, categories = mapping.emails, mapping.categories
    types: dict[str, TypeEngine[Any]] = {}
    for name, kind in (
        (emails.id, BigInteger()),
        (emails.account, BigInteger()),
        (emails.category, BigInteger()),
        (emails.created_at, UTCDateTime()),
        (emails.unread.column, _flag_type(emails.unread)),
        (emails.auto_labeled.column, _flag_type(emails.auto_labeled)),
    ):
        if name is not None:
            types.setdefault(name, kind)
    metadata = MetaData()
    email_table = Table(
        emails.table.name,
        metadata,
        *(Column(name, kind, key=name) for name, kind in types.items()),
        schema=emails.table.schema,
    )
    category_table = Table(
        categories.table.name,
        metadata,
        Column(categories.id, BigInteger(), key="id"),
        Column(categories.name, Text(), key="name"),
        schema=categories.table.schema,
    )
    columns = email_table.c
    return MappedTables(
        mapping=mapping,
        emails=email_table,
        categories=category_table,
        email_id=columns[emails.id],
        account=None if emails.account is None else columns[emails.account],
        category=columns[emails.category],
        created_at=columns[emails.created_at],
        unread=_condition(columns[emails.unread.column], emails.unread),
        auto_labeled=_condition(columns[emails.auto_labeled.column], emails.auto_labeled),
        category_id=category_table.c.id,
        category_name=category_table.c.name,
    )


def _flag_type(flag: Flag) -> TypeEngine[Any]:
    return NullType() if flag.when in ("null", "not_null") else Boolean()


def _condition(column: Column[object], flag: Flag) -> ColumnElement[bool]:
    if flag.when == "null":
        return column.is_(None)
    if flag.when == "not_null":
        return column.is_not(None)
    return column.is_(flag.when == "true")


DEMO_TABLES = build_tables(DEMO_MAPPING)


def bind_tables(engine: Engine, tables: MappedTables) -> Engine:
    """Make `engine` (and every connection and session on it) read `tables`; returns it."""
    engine.update_execution_options(**{EXECUTION_OPTION: tables})
    return engine


def tables_of(bind: Engine | Connection | Session) -> MappedTables:
    """The tables an engine, connection or session reads (the demo schema if none was bound)."""
    if isinstance(bind, Session):
        bind = bind.connection()
    tables = bind.get_execution_options().get(EXECUTION_OPTION, DEMO_TABLES)
    assert isinstance(tables, MappedTables)
    return tables


def index_ddl(mapping: SchemaMapping, dialect: Dialect) -> str:
    """The CREATE INDEX that serves the counting passes on the mapped columns.

    Account (when there is one) and category lead, in the order the passes group by; on
    PostgreSQL the flags and created_at are INCLUDEd, so a scope's counts can come from an
    index-only scan, and the index is built CONCURRENTLY (writers are not blocked).
    """
    tables = build_tables(mapping)
    emails = mapping.emails
    leading = [name for name in (emails.account, emails.category) if name is not None]
    counted = (emails.unread.column, emails.auto_labeled.column, emails.created_at)
    included = [name for name in dict.fromkeys(counted) if name not in leading]
    postgres = dialect.name == "postgresql"
    keys = leading if postgres else leading + included
    index = Index(
        INDEX_NAME,
        *(tables.emails.c[name] for name in keys),
        postgresql_include=included if postgres else [],
        postgresql_concurrently=postgres,
    )
    return str(CreateIndex(index).compile(dialect=dialect)).strip() + ";"


def created_index_ddl(mapping: SchemaMapping, dialect: Dialect) -> str:
    """The CREATE INDEX on created_at that serves a recount's window crossings (the emails
    created in the spans around both window starts, shared/crossings.py) without a second scan
    of the table; CONCURRENTLY on PostgreSQL."""
    tables = build_tables(mapping)
    postgres = dialect.name == "postgresql"
    index = Index(
        CREATED_INDEX_NAME,
        tables.emails.c[mapping.emails.created_at],
        postgresql_concurrently=postgres,
    )
    return str(CreateIndex(index).compile(dialect=dialect)).strip() + ";"
