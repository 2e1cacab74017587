"""Decode PostgreSQL's `pgoutput` logical replication messages, protocol version 1.

Version 1 (`proto_version '1'`): text-format values, whole transactions sent after their commit,
no streaming. Pure: bytes in, one frozen dataclass out; the replication connection is elsewhere.

Written here rather than taken from a library: the Python decoders on the package index are
unmaintained prototypes (pypgoutput 0.0.3, 2022, tied to psycopg2 and Pydantic; pypg-cdc 0.0.1)
or a whole Rust CDC client with its own connection and Debezium-shaped events (pgoutput-decoder);
a newer pure-Python `pgoutput` is not on the index this project installs from. Version 1 is a
dozen fixed layouts, small enough to test completely. The byte reads are in `dashcache.cdc.wire`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeAlias

from dashcache.cdc.wire import UNCHANGED as UNCHANGED
from dashcache.cdc.wire import Reader
from dashcache.cdc.wire import Row as Row
from dashcache.cdc.wire import Unchanged as Unchanged
from dashcache.errors import PgoutputError

REPLICA_IDENTITIES = frozenset("dnfi")
"""default (primary key), nothing, full, index."""


@dataclass(frozen=True, slots=True)
class Begin:
    """A transaction starts; `final_lsn` is its commit record's position."""

    final_lsn: int
    commit_time: datetime
    xid: int


@dataclass(frozen=True, slots=True)
class Commit:
    """A transaction ends; `end_lsn` is where the stream resumes after it."""

    flags: int
    commit_lsn: int
    end_lsn: int
    commit_time: datetime


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a relation; `key` when it is part of the replica identity."""

    key: bool
    name: str
    type_oid: int
    type_modifier: int


@dataclass(frozen=True, slots=True)
class Relation:
    """A table's description, sent before its first change in a session (and after DDL)."""

    oid: int
    namespace: str
    name: str
    replica_identity: str
    columns: tuple[Column, ...]


@dataclass(frozen=True, slots=True)
class Insert:
    """A row was inserted."""

    oid: int
    new: Row


@dataclass(frozen=True, slots=True)
class Update:
    """A row was updated; `old` is None without a before-image, a key-only ('K') or whole ('O')
    old row otherwise."""

    oid: int
    old: Row | None
    old_is_key: bool
    new: Row


@dataclass(frozen=True, slots=True)
class Delete:
    """A row was deleted; `old` holds its key ('K') or, with REPLICA IDENTITY FULL, all of it."""

    oid: int
    old: Row
    old_is_key: bool


@dataclass(frozen=True, slots=True)
class Truncate:
    """Tables were truncated."""

    oids: tuple[int, ...]
    cascade: bool
    restart_identity: bool


@dataclass(frozen=True, slots=True)
class Origin:
    """The transaction was replicated from another node."""

    lsn: int
    name: str


@dataclass(frozen=True, slots=True)
class TypeInfo:
    """A non-built-in type used by a following Relation."""

    oid: int
    namespace: str
    name: str


@dataclass(frozen=True, slots=True)
class LogicalMessage:
    """A `pg_logical_emit_message` record."""

    transactional: bool
    lsn: int
    prefix: str
    content: bytes


Message: TypeAlias = (
    Begin
    | Commit
    | Relation
    | Insert
    | Update
    | Delete
    | Truncate
    | Origin
    | TypeInfo
    | LogicalMessage
)

_TRUNCATE_CASCADE = 1
_TRUNCATE_RESTART_IDENTITY = 2


def decode(payload: bytes) -> Message:
    """The message in one pgoutput payload; `PgoutputError` if truncated, unknown or overlong."""
    if not payload:
        raise PgoutputError("empty pgoutput message")
    reader = Reader(payload)
    kind = chr(reader.u8())
    parse = _PARSERS.get(kind)
    if parse is None:
        raise PgoutputError(f"unknown pgoutput message kind {kind!r} (protocol version 1)")
    message = parse(reader)
    reader.finish()
    return message


def format_lsn(lsn: int) -> str:
    """An LSN as PostgreSQL prints it, e.g. `16/B374D848`."""
    if not 0 <= lsn < 1 << 64:
        raise PgoutputError(f"LSN {lsn} is out of range (0 .. 2**64-1)")
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_lsn(text: str) -> int:
    """The LSN in PostgreSQL's `hi/lo` hexadecimal text form, e.g. `16/B374D848`."""
    high, sep, low = text.partition("/")
    if not (sep and _is_hex32(high) and _is_hex32(low)):
        raise PgoutputError(f"{text!r} is not an LSN (expected two hexadecimal parts, 16/B374D848)")
    return int(high, 16) << 32 | int(low, 16)


def _is_hex32(part: str) -> bool:
    return 1 <= len(part) <= 8 and all(c in "0123456789abcdefABCDEF" for c in part)


def _begin(r: Reader) -> Begin:
    return Begin(r.u64("final LSN"), r.time("commit time"), r.u32("xid"))


def _commit(r: Reader) -> Commit:
    return Commit(r.u8("flags"), r.u64("commit LSN"), r.u64("end LSN"), r.time("commit time"))


def _origin(r: Reader) -> Origin:
    return Origin(r.u64("origin LSN"), r.string("origin name"))


def _relation(r: Reader) -> Relation:
    oid, namespace, name = r.u32("relation oid"), r.string("namespace"), r.string("name")
    identity = chr(r.u8("replica identity"))
    if identity not in REPLICA_IDENTITIES:
        raise PgoutputError(f"pgoutput 'R' message: unknown replica identity {identity!r}")
    columns = tuple(
        Column(
            bool(r.u8("column flags") & 1),
            r.string("column name"),
            r.u32("column type"),
            r.i32("column type modifier"),
        )
        for _ in range(r.i16("column count"))
    )
    return Relation(oid, namespace, name, identity, columns)


def _type(r: Reader) -> TypeInfo:
    return TypeInfo(r.u32("type oid"), r.string("namespace"), r.string("name"))


def _insert(r: Reader) -> Insert:
    oid = r.u32("relation oid")
    r.tuple_kind("N", "tuple kind")
    return Insert(oid, r.row())


def _update(r: Reader) -> Update:
    oid = r.u32("relation oid")
    kind = r.tuple_kind("KON", "tuple kind")
    if kind == "N":
        return Update(oid, None, False, r.row())
    old = r.row()
    r.tuple_kind("N", "new tuple kind")
    return Update(oid, old, kind == "K", r.row())


def _delete(r: Reader) -> Delete:
    oid = r.u32("relation oid")
    kind = r.tuple_kind("KO", "tuple kind")
    return Delete(oid, r.row(), kind == "K")


def _truncate(r: Reader) -> Truncate:
    count = r.i32("relation count")
    options = r.u8("options")
    oids = tuple(r.u32("relation oid") for _ in range(count))
    return Truncate(
        oids, bool(options & _TRUNCATE_CASCADE), bool(options & _TRUNCATE_RESTART_IDENTITY)
    )


def _message(r: Reader) -> LogicalMessage:
    transactional = bool(r.u8("flags") & 1)
    lsn, prefix = r.u64("message LSN"), r.string("prefix")
    return LogicalMessage(transactional, lsn, prefix, r.raw(r.i32("content length"), "content"))


_PARSERS: dict[str, Callable[[Reader], Message]] = {
    "B": _begin,
    "C": _commit,
    "O": _origin,
    "R": _relation,
    "Y": _type,
    "I": _insert,
    "U": _update,
    "D": _delete,
    "T": _truncate,
    "M": _message,
}
