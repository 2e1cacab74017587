"""The schema mapping against the live database: checked at start-up, then bound to the engine.

Every process that reads the database (worker, beat, reader, CLI) opens its engine with
`engine_for`: with a mapping file, the tables and columns it names must exist with usable
types, or `SchemaError` stops the start-up with every problem found, each naming its key:

    emails.unread: column "read_at" not found in table "messages"

Without a mapping file nothing is checked (the demo schema, as before).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, inspect
from sqlalchemy.types import Boolean, DateTime, Integer, String, TypeEngine

from dashcache.config import Settings
from dashcache.db import make_engine
from dashcache.errors import SchemaError
from dashcache.schema.mapping import Flag, SchemaMapping, TableName, load_mapping
from dashcache.schema.tables import bind_tables, build_tables

Check = Callable[[TypeEngine[Any]], str | None]
"""What is wrong with a column's type for its role (None when it is usable)."""


def engine_for(settings: Settings, timeout_seconds: float | None = None, **kwargs: Any) -> Engine:
    """An engine on the database of `settings`, the mapping checked (if any) and bound to it."""
    mapping = load_mapping(settings.schema_file)
    engine = make_engine(settings.database_url, timeout_seconds, **kwargs)
    if not mapping.is_default:
        try:
            check_schema(engine, mapping)
        except BaseException:
            engine.dispose()
            raise
    return bind_tables(engine, build_tables(mapping))


def check_schema(engine: Engine, mapping: SchemaMapping) -> None:
    """Raise `SchemaError` listing every problem of `mapping` against the live database."""
    found = problems(engine, mapping)
    if found:
        source = mapping.source or "the demo schema"
        raise SchemaError(
            f"schema mapping {source} does not fit the database:\n" + "\n".join(found)
        )


def problems(engine: Engine, mapping: SchemaMapping) -> list[str]:
    """Every problem of `mapping` against the live database, one line each (none: it fits)."""
    inspector = inspect(engine)
    postgres = engine.dialect.name == "postgresql"
    emails, categories = mapping.emails, mapping.categories
    timestamp = _timestamp(postgres)
    email_roles: list[tuple[str, str | None, Check]] = [
        ("id", emails.id, _integer),
        ("account", emails.account, _integer),
        ("category", emails.category, _integer),
        ("created_at", emails.created_at, timestamp),
        ("unread", emails.unread.column, _flag(emails.unread)),
        ("auto_labeled", emails.auto_labeled.column, _flag(emails.auto_labeled)),
    ]
    category_roles: list[tuple[str, str | None, Check]] = [
        ("id", categories.id, _integer),
        ("name", categories.name, _text),
    ]
    found: list[str] = []
    for section, table, roles in (
        ("emails", emails.table, email_roles),
        ("categories", categories.table, category_roles),
    ):
        found += _table_problems(inspector, engine, section, table, roles)
    return found


def _table_problems(
    inspector: Any,
    engine: Engine,
    section: str,
    table: TableName,
    roles: list[tuple[str, str | None, Check]],
) -> list[str]:
    if not inspector.has_table(table.name, schema=table.schema):
        where = f' (schema "{table.schema}")' if table.schema else ""
        return [f'{section}.table: table "{table.text}" not found{where}']
    columns = {column["name"]: column["type"] for column in inspector.get_columns(
        table.name, schema=table.schema
    )}  # fmt: skip
    found = []
    for key, name, check in roles:
        if name is None:
            continue
        if name not in columns:
            found.append(f'{section}.{key}: column "{name}" not found in table "{table.text}"')
            continue
        kind = columns[name]
        problem = check(kind)
        if problem:
            spelled = kind.compile(dialect=engine.dialect)
            found.append(
                f'{section}.{key}: column "{name}" of table "{table.text}" is {spelled}; {problem}'
            )
    return found


def _integer(kind: TypeEngine[Any]) -> str | None:
    return None if isinstance(kind, Integer) else "an integer column is needed"


def _text(kind: TypeEngine[Any]) -> str | None:
    return None if isinstance(kind, String) else "a text column is needed"


def _timestamp(postgres: bool) -> Check:
    def check(kind: TypeEngine[Any]) -> str | None:
        if not isinstance(kind, DateTime):
            return "a timestamp with time zone is needed"
        if postgres and not kind.timezone:
            return (
                "a timestamp with time zone is needed (a timestamp without one means "
                "different instants under different TimeZone settings)"
            )
        return None

    return check


def _flag(flag: Flag) -> Check:
    def check(kind: TypeEngine[Any]) -> str | None:
        if flag.when in ("null", "not_null") or isinstance(kind, Boolean):
            return None
        return (
            f'a boolean column is needed (or map it as {{ column = "{flag.column}", '
            'when = "null" }, set when the column IS NULL, or when = "not_null", set when it '
            "IS NOT NULL)"
        )

    return check
