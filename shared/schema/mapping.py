"""The schema mapping: which of the app's own tables and columns hold what dashcache counts.

A TOML file named by DASHCACHE_SCHEMA_FILE (see docs/schema-mapping.md); without one the demo
schema (`dashcache.models`) is the mapping. Parsing is pure and checks the file's shape only: every
key known, every required key present, each value of the right form. Whether the tables and
columns exist, with usable types, is checked against the database (`dashcache.schema.check`).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from typing import Any, Literal

from dashcache.errors import SchemaError

When = Literal["true", "false", "null", "not_null"]
"""When a flag is set: the boolean column is true, it is false, the column IS NULL, or the column
IS NOT NULL (any type: `{ column = "category_id", when = "not_null" }` counts an email with a
category)."""

WHEN_FORMS: tuple[When, ...] = ("false", "null", "not_null")
"""The values `when` may take (a plain column name means "true")."""

EMAIL_KEYS = ("table", "id", "account", "category", "created_at", "unread", "auto_labeled")
CATEGORY_KEYS = ("table", "id", "name")
FLAG_KEYS = ("column", "when")
OPTIONAL_KEYS = frozenset({"emails.account"})


@dataclass(frozen=True, slots=True)
class TableName:
    """A table, optionally in a PostgreSQL schema; `text` is how the mapping spelled it."""

    name: str
    schema: str | None
    text: str


@dataclass(frozen=True, slots=True)
class Flag:
    """A counted condition (unread, auto-labeled): a column, and when it counts as set."""

    column: str
    when: When = "true"


@dataclass(frozen=True, slots=True)
class EmailsMapping:
    """Where the emails are; `account` is None for a single-tenant app."""

    table: TableName
    id: str
    account: str | None
    category: str
    created_at: str
    unread: Flag
    auto_labeled: Flag


@dataclass(frozen=True, slots=True)
class CategoriesMapping:
    """Where the categories are."""

    table: TableName
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class SchemaMapping:
    """The whole mapping; `source` is the file it came from (None: the demo schema)."""

    emails: EmailsMapping
    categories: CategoriesMapping
    source: str | None = None

    @property
    def multi_tenant(self) -> bool:
        """True when emails have an account column (scopes: each account, and all accounts)."""
        return self.emails.account is not None

    @property
    def is_default(self) -> bool:
        """True for the demo schema (no mapping file)."""
        return self.source is None


DEMO_MAPPING = SchemaMapping(
    EmailsMapping(
        table=TableName("emails", None, "emails"),
        id="id",
        account="account_id",
        category="category_id",
        created_at="created_at",
        unread=Flag("is_unread"),
        auto_labeled=Flag("is_auto_labeled"),
    ),
    CategoriesMapping(TableName("categories", None, "categories"), "id", "name"),
)
"""The demo schema of `dashcache.models`: what dashcache reads when no mapping file is given."""


def load_mapping(path: str | None) -> SchemaMapping:
    """The mapping in the TOML file at `path`, or the demo mapping for None."""
    if path is None:
        return DEMO_MAPPING
    try:
        with open(path, "rb") as file:
            document = tomllib.load(file)
    except OSError as error:
        raise SchemaError(f"DASHCACHE_SCHEMA_FILE={path!r}: cannot read it ({error})") from None
    except tomllib.TOMLDecodeError as error:
        raise SchemaError(f"DASHCACHE_SCHEMA_FILE={path!r}: not valid TOML ({error})") from None
    return parse_mapping(document, source=path)


def parse_mapping(document: dict[str, Any], source: str) -> SchemaMapping:
    """Build a mapping from a parsed TOML document; `SchemaError` names the first bad key."""
    _known(document, "", ("emails", "categories"))
    emails = _section(document, "emails", EMAIL_KEYS)
    categories = _section(document, "categories", CATEGORY_KEYS)
    return SchemaMapping(
        EmailsMapping(
            table=parse_table(_name(emails, "emails.table"), "emails.table"),
            id=_name(emails, "emails.id"),
            account=_name(emails, "emails.account") if "account" in emails else None,
            category=_name(emails, "emails.category"),
            created_at=_name(emails, "emails.created_at"),
            unread=_flag(emails, "emails.unread"),
            auto_labeled=_flag(emails, "emails.auto_labeled"),
        ),
        CategoriesMapping(
            table=parse_table(_name(categories, "categories.table"), "categories.table"),
            id=_name(categories, "categories.id"),
            name=_name(categories, "categories.name"),
        ),
        source,
    )


def parse_table(text: str, key: str = "") -> TableName:
    """`name` or `schema.name`; a part may be double-quoted ("my.schema") to hold dots.

    Unquoted parts are taken as written (no case folding): they must match the catalog.
    """
    key = key or "table"
    parts: list[str] = []
    rest = text
    while True:
        if rest.startswith('"'):
            part, rest = _quoted(rest, key, text)
        else:
            end = rest.find(".")
            part, rest = (rest, "") if end < 0 else (rest[:end], rest[end:])
        if not part:
            raise SchemaError(f"{key}: {text!r} has an empty name part")
        parts.append(part)
        if not rest:
            break
        if not rest.startswith(".") or len(parts) == 2:
            raise SchemaError(f"{key}: {text!r} must be a table name or schema.table")
        rest = rest[1:]
    schema, name = (None, parts[0]) if len(parts) == 1 else (parts[0], parts[1])
    return TableName(name, schema, text)


def _quoted(rest: str, key: str, text: str) -> tuple[str, str]:
    """Split a leading double-quoted identifier ("" inside is one quote) from the rest."""
    pieces, start = [], 1
    while True:
        end = rest.find('"', start)
        if end < 0:
            raise SchemaError(f"{key}: {text!r} has an unclosed double quote")
        if rest[end + 1 : end + 2] == '"':
            pieces.append(rest[start : end + 1])
            start = end + 2
            continue
        pieces.append(rest[start:end])
        return "".join(pieces), rest[end + 1 :]


def _known(table: dict[str, Any], where: str, allowed: tuple[str, ...]) -> None:
    for key in table:
        if key not in allowed:
            raise SchemaError(f"{where}{key}: unknown key (expected one of: {', '.join(allowed)})")


def _section(document: dict[str, Any], name: str, keys: tuple[str, ...]) -> dict[str, Any]:
    section = document.get(name)
    if section is None:
        raise SchemaError(f"{name}: missing section [{name}]")
    if not isinstance(section, dict):
        raise SchemaError(f"{name}: must be a table [{name}], got {section!r}")
    _known(section, f"{name}.", keys)
    for key in keys:
        if key not in section and f"{name}.{key}" not in OPTIONAL_KEYS:
            raise SchemaError(f"{name}.{key}: missing (required)")
    return section


def _name(section: dict[str, Any], key: str) -> str:
    value = section[key.rsplit(".", 1)[1]]
    if not isinstance(value, str) or not value:
        raise SchemaError(f"{key}: must be a non-empty string naming a column, got {value!r}")
    if "\x00" in value:
        raise SchemaError(f"{key}: must not contain a NUL character")
    return value


def _flag(section: dict[str, Any], key: str) -> Flag:
    value = section[key.rsplit(".", 1)[1]]
    if isinstance(value, str):
        return Flag(_name(section, key))
    if not isinstance(value, dict):
        raise SchemaError(
            f'{key}: must be a column name or {{ column = "...", when = {_WHEN_TEXT} }} '
            f"(a name alone: a boolean column, set when true), got {value!r}"
        )
    _known(value, f"{key}.", FLAG_KEYS)
    for part in FLAG_KEYS:
        if part not in value:
            raise SchemaError(f"{key}.{part}: missing (required)")
    when = value["when"]
    if when not in WHEN_FORMS:
        raise SchemaError(
            f"{key}.when: must be one of {_WHEN_TEXT} (or map a boolean column by its name "
            f"alone, set when true), got {when!r}"
        )
    return Flag(_name(value, f"{key}.column"), when)


_WHEN_TEXT = " | ".join(f'"{form}"' for form in WHEN_FORMS)


def describe(mapping: SchemaMapping) -> str:
    """The mapping as TOML (what `dashcache schema check` prints)."""
    emails, categories = mapping.emails, mapping.categories
    lines = ["[emails]", f"table = {_toml(emails.table.text)}", f"id = {_toml(emails.id)}"]
    if emails.account is None:
        lines.append("# account: none (single-tenant: the all-accounts scope only)")
    else:
        lines.append(f"account = {_toml(emails.account)}")
    lines += [
        f"category = {_toml(emails.category)}",
        f"created_at = {_toml(emails.created_at)}",
        f"unread = {_flag_toml(emails.unread)}",
        f"auto_labeled = {_flag_toml(emails.auto_labeled)}",
        "",
        "[categories]",
        f"table = {_toml(categories.table.text)}",
        f"id = {_toml(categories.id)}",
        f"name = {_toml(categories.name)}",
    ]
    return "\n".join(lines)


def _flag_toml(flag: Flag) -> str:
    if flag.when == "true":
        return _toml(flag.column)
    return f"{{ column = {_toml(flag.column)}, when = {_toml(flag.when)} }}"


def _toml(text: str) -> str:
    """A TOML basic string (JSON's escapes are valid TOML escapes for these characters)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(c if c.isprintable() else f"\\U{ord(c):08x}" for c in escaped) + '"'
