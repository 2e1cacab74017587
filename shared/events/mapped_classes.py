"""The host's own ORM classes for the mapped tables, recognised by the table they map.

`track_mutations` needs no dashcache model: any mapped class whose table is the mapping's emails
(or categories) table, with an attribute for each mapped column, is an email (or a category).
Its counted attributes turn into the event's `EmailRow`, whatever the columns are called and
however the flags are stored (`is_unread`, `read_at IS NULL`, `is_read = false`,
`category_id IS NOT NULL`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from sqlalchemy import Table, inspect, select
from sqlalchemy.orm import Mapper, Session

from dashcache.events.types import EmailRow
from dashcache.logging import get_logger
from dashcache.schema.mapping import Flag, TableName
from dashcache.schema.tables import MappedTables

log = get_logger(__name__)

EMAIL_ROLES = ("id", "account", "category", "created_at", "unread", "auto_labeled")
CATEGORY_ROLES = ("id", "name")
EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class MappedClass:
    """A host class of a mapped table: the attribute key of each role (None: no such column)."""

    table: Table
    attributes: dict[str, str | None]
    columns: dict[str, Any]
    """Role -> Core column of the mapped table, for reading values the session no longer has."""

    def value(
        self, obj: object, role: str, old: bool = False, fetched: Mapping[str, Any] = EMPTY
    ) -> Any:
        """A role's value after the pending change, or before it (`old`; `fetched` holds the
        old values `fetch` read)."""
        key = self.attributes[role]
        if key is None:
            return None
        history = inspect(obj).attrs[key].history
        if old and history.deleted:
            return history.deleted[0]
        if not old and history.added:
            return history.added[0]
        if history.unchanged:
            return history.unchanged[0]
        if old and role in fetched:
            return fetched[role]
        return getattr(obj, key)

    def changed(self, obj: object, role: str, fetched: Mapping[str, Any] = EMPTY) -> bool:
        """Whether the pending change sets a role to another value."""
        return bool(self.value(obj, role, True, fetched) != self.value(obj, role))

    def unknown_old(self, obj: object, roles: tuple[str, ...]) -> list[str]:
        """Roles set while their loaded value was gone (expired): the old value is unknown."""
        state = inspect(obj)
        found = []
        for role in roles:
            key = self.attributes[role]
            if key is not None:
                history = state.attrs[key].history
                if history.added and not history.deleted and not history.unchanged:
                    found.append(role)
        return found

    def fetch(self, session: Session, obj: object, roles: list[str]) -> dict[str, Any]:
        """The stored values of some roles of `obj`'s row (read before the flush writes it)."""
        if not roles:
            return {}
        key = self.value(obj, "id", old=True)
        query = select(*(self.columns[role] for role in roles)).where(self.columns["id"] == key)
        row = session.connection().execute(query).one_or_none()
        return {} if row is None else dict(zip(roles, row, strict=True))


@dataclass(frozen=True, slots=True)
class EmailClass(MappedClass):
    """A host class of the emails table."""

    unread: Flag
    auto_labeled: Flag

    def row(self, obj: object, old: bool = False, fetched: Mapping[str, Any] = EMPTY) -> EmailRow:
        """The counted fields of `obj` before or after the pending change."""
        created = self.value(obj, "created_at", old, fetched)
        if isinstance(created, datetime) and created.tzinfo is None:
            created = created.replace(tzinfo=UTC)  # a naive timestamp is read as UTC
        return EmailRow(
            category_id=self.value(obj, "category", old, fetched),
            is_unread=_is_set(self.unread, self.value(obj, "unread", old, fetched)),
            is_auto_labeled=_is_set(
                self.auto_labeled, self.value(obj, "auto_labeled", old, fetched)
            ),
            created_at=created,
        )


def _is_set(flag: Flag, value: object) -> bool:
    """A flag's value as SQL counts it (a NULL boolean is neither true nor false)."""
    if flag.when == "null":
        return value is None
    if flag.when == "not_null":
        return value is not None
    if value is None:
        return False
    return bool(value) is (flag.when == "true")


class MappedClasses:
    """Recognises objects of the host's classes for the mapped tables (one lookup per class)."""

    def __init__(self, tables: MappedTables) -> None:
        self.tables = tables
        self._known: dict[Mapper[Any], MappedClass | None] = {}

    def of(self, obj: object) -> MappedClass | None:
        """The mapped class of `obj` (an `EmailClass` for emails), or None if not tracked."""
        mapper = inspect(obj).mapper
        if mapper not in self._known:
            self._known[mapper] = self._recognise(mapper)
        return self._known[mapper]

    def _recognise(self, mapper: Mapper[Any]) -> MappedClass | None:
        table = mapper.local_table
        if not isinstance(table, Table):
            return None
        mapping, tables = self.tables.mapping, self.tables
        if _same_table(table, mapping.emails.table):
            emails = mapping.emails
            names = {
                "id": emails.id,
                "account": emails.account,
                "category": emails.category,
                "created_at": emails.created_at,
                "unread": emails.unread.column,
                "auto_labeled": emails.auto_labeled.column,
            }
            columns = {
                "id": tables.email_id,
                "account": tables.account,
                "category": tables.category,
                "created_at": tables.created_at,
                "unread": tables.emails.c[emails.unread.column],
                "auto_labeled": tables.emails.c[emails.auto_labeled.column],
            }
            attributes = _attributes(mapper, table, names)
            if attributes is None:
                return None
            return EmailClass(table, attributes, columns, emails.unread, emails.auto_labeled)
        if _same_table(table, mapping.categories.table):
            categories = mapping.categories
            names = {"id": categories.id, "name": categories.name}
            columns = {"id": tables.category_id, "name": tables.category_name}
            attributes = _attributes(mapper, table, names)
            return None if attributes is None else MappedClass(table, attributes, columns)
        return None


def _same_table(table: Table, mapped: TableName) -> bool:
    """The same table name; and the same schema when both name one (else the search path's)."""
    if table.name != mapped.name:
        return False
    return table.schema is None or mapped.schema is None or table.schema == mapped.schema


def _attributes(
    mapper: Mapper[Any], table: Table, names: dict[str, str | None]
) -> dict[str, str | None] | None:
    """Attribute key per role; None (logged) when a mapped column has no attribute."""
    by_column = {
        column.name: prop.key
        for prop in mapper.column_attrs
        for column in prop.columns
        if getattr(column, "table", None) is table
    }
    missing = [name for name in names.values() if name is not None and name not in by_column]
    if missing:
        log.error(
            "event.untracked_class",
            cls=mapper.class_.__name__,
            table=table.fullname,
            missing_columns=missing,
        )
        return None
    return {role: None if name is None else by_column[name] for role, name in names.items()}
