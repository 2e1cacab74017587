"""Decode PostgreSQL's `pgoutput` logical replication messages, protocol version 1.

Version 1 (`proto_version '1'`): text-format values, whole transactions sent after their commit,
no streaming. Pure: bytes in, one frozen dataclass out; the replication connection is elsewhere.

Written here rather than taken from a library: the Python decoders on PyPI are unmaintained
prototypes (pypgoutput 0.0.3, 2022, tied to psycopg2 and Pydantic; pypg-cdc 0.0.1, 2023) or a
whole Rust CDC client with its own connection and Debezium-shaped events (pgoutput-decoder);
version 1 is a dozen fixed layouts, small enough to test completely.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeAlias

from dashcache.errors import PgoutputError

PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
"""pgoutput times are microseconds since this instant."""

REPLICA_IDENTITIES = frozenset("dnfi")
"""default (primary key), nothing, full, index."""


class Unchanged(enum.Enum):
    """An unchanged TOASTed value: pgoutput does not send it again ('u')."""

    UNCHANGED = "u"

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED = Unchanged.UNCHANGED

Row: TypeAlias = tuple[str | Unchanged | None, ...]
"""One tuple's values in column order: text (UTF-8 decoded), None for NULL, or UNCHANGED."""


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
    reader = _Reader(payload)
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


class _Reader:
    """Big-endian fields read in order from one payload."""

    __slots__ = ("_data", "_kind", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0
        self._kind = chr(data[0]) if data else "?"

    def _take(self, size: int, what: str) -> bytes:
        end = self._pos + size
        if end > len(self._data):
            raise PgoutputError(
                f"truncated pgoutput {self._kind!r} message: {what} needs {size} bytes at "
                f"offset {self._pos}, the payload has {len(self._data)}"
            )
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def _unpack(self, fmt: str, what: str) -> int:
        value: int = struct.unpack(fmt, self._take(struct.calcsize(fmt), what))[0]
        return value

    def u8(self, what: str = "kind") -> int:
        return self._unpack(">B", what)

    def i16(self, what: str) -> int:
        return self._unpack(">h", what)

    def u32(self, what: str) -> int:
        return self._unpack(">I", what)

    def i32(self, what: str) -> int:
        return self._unpack(">i", what)

    def u64(self, what: str) -> int:
        return self._unpack(">Q", what)

    def time(self, what: str) -> datetime:
        return PG_EPOCH + timedelta(microseconds=self._unpack(">q", what))

    def string(self, what: str) -> str:
        end = self._data.find(b"\0", self._pos)
        if end < 0:
            raise PgoutputError(
                f"truncated pgoutput {self._kind!r} message: {what} has no terminating NUL"
            )
        text = self._text(self._data[self._pos : end], what)
        self._pos = end + 1
        return text

    def raw(self, size: int, what: str) -> bytes:
        if size < 0:
            raise PgoutputError(f"pgoutput {self._kind!r} message: negative length for {what}")
        return self._take(size, what)

    def _text(self, data: bytes, what: str) -> str:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise PgoutputError(
                f"pgoutput {self._kind!r} message: {what} is not UTF-8 ({error})"
            ) from None

    def tuple_kind(self, allowed: str, what: str) -> str:
        kind = chr(self.u8(what))
        if kind not in allowed:
            raise PgoutputError(
                f"pgoutput {self._kind!r} message: {what} is {kind!r}, expected one of {allowed!r}"
            )
        return kind

    def row(self) -> Row:
        count = self.i16("column count")
        values: list[str | Unchanged | None] = []
        for index in range(count):
            what = f"column {index}"
            kind = chr(self.u8(what))
            if kind == "n":
                values.append(None)
            elif kind == "u":
                values.append(UNCHANGED)
            elif kind == "t":
                values.append(self._text(self.raw(self.i32(what), what), what))
            else:
                raise PgoutputError(
                    f"pgoutput {self._kind!r} message: {what} has value kind {kind!r} "
                    "(only text 'n', 'u', 't' in protocol version 1)"
                )
        return tuple(values)

    def finish(self) -> None:
        extra = len(self._data) - self._pos
        if extra:
            raise PgoutputError(f"pgoutput {self._kind!r} message has {extra} trailing bytes")


def _begin(r: _Reader) -> Begin:
    return Begin(r.u64("final LSN"), r.time("commit time"), r.u32("xid"))


def _commit(r: _Reader) -> Commit:
    return Commit(r.u8("flags"), r.u64("commit LSN"), r.u64("end LSN"), r.time("commit time"))


def _origin(r: _Reader) -> Origin:
    return Origin(r.u64("origin LSN"), r.string("origin name"))


def _relation(r: _Reader) -> Relation:
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


def _type(r: _Reader) -> TypeInfo:
    return TypeInfo(r.u32("type oid"), r.string("namespace"), r.string("name"))


def _insert(r: _Reader) -> Insert:
    oid = r.u32("relation oid")
    r.tuple_kind("N", "tuple kind")
    return Insert(oid, r.row())


def _update(r: _Reader) -> Update:
    oid = r.u32("relation oid")
    kind = r.tuple_kind("KON", "tuple kind")
    if kind == "N":
        return Update(oid, None, False, r.row())
    old = r.row()
    r.tuple_kind("N", "new tuple kind")
    return Update(oid, old, kind == "K", r.row())


def _delete(r: _Reader) -> Delete:
    oid = r.u32("relation oid")
    kind = r.tuple_kind("KO", "tuple kind")
    return Delete(oid, r.row(), kind == "K")


def _truncate(r: _Reader) -> Truncate:
    count = r.i32("relation count")
    options = r.u8("options")
    oids = tuple(r.u32("relation oid") for _ in range(count))
    return Truncate(
        oids, bool(options & _TRUNCATE_CASCADE), bool(options & _TRUNCATE_RESTART_IDENTITY)
    )


def _message(r: _Reader) -> LogicalMessage:
    transactional = bool(r.u8("flags") & 1)
    lsn, prefix = r.u64("message LSN"), r.string("prefix")
    return LogicalMessage(transactional, lsn, prefix, r.raw(r.i32("content length"), "content"))


_PARSERS: dict[str, Callable[[_Reader], Message]] = {
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
