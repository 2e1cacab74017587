"""The byte layer of pgoutput: big-endian fields and TupleData read in order from one payload.

Every read that runs past the payload, and every value it cannot read, raises `PgoutputError`
naming the field; `dashcache.cdc.pgoutput` builds the messages from these reads.
"""

from __future__ import annotations

import enum
import struct
from datetime import UTC, datetime, timedelta
from typing import NoReturn, TypeAlias

from dashcache.errors import PgoutputError

PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
"""pgoutput times are microseconds since this instant."""


class Unchanged(enum.Enum):
    """An unchanged TOASTed value: pgoutput does not send it again ('u')."""

    UNCHANGED = "u"

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED = Unchanged.UNCHANGED

Row: TypeAlias = tuple[str | Unchanged | None, ...]
"""One tuple's values in column order: text (UTF-8 decoded), None for NULL, or UNCHANGED."""


_U8, _I16, _I32, _U32 = (
    struct.Struct(">B"),
    struct.Struct(">h"),
    struct.Struct(">i"),
    struct.Struct(">I"),
)
_I64, _U64 = struct.Struct(">q"), struct.Struct(">Q")
_NULL, _UNCHANGED_TOAST, _TEXT = ord("n"), ord("u"), ord("t")


class Reader:
    """Big-endian fields read in order from one payload."""

    __slots__ = ("_data", "_kind", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0
        self._kind = chr(data[0]) if data else "?"

    def _truncated(self, size: int, what: str) -> PgoutputError:
        return PgoutputError(
            f"truncated pgoutput {self._kind!r} message: {what} needs {size} bytes at "
            f"offset {self._pos}, the payload has {len(self._data)}"
        )

    def _unpack(self, field: struct.Struct, what: str) -> int:
        try:
            value: int = field.unpack_from(self._data, self._pos)[0]
        except struct.error:
            raise self._truncated(field.size, what) from None
        self._pos += field.size
        return value

    def u8(self, what: str = "kind") -> int:
        return self._unpack(_U8, what)

    def i16(self, what: str) -> int:
        return self._unpack(_I16, what)

    def u32(self, what: str) -> int:
        return self._unpack(_U32, what)

    def i32(self, what: str) -> int:
        return self._unpack(_I32, what)

    def u64(self, what: str) -> int:
        return self._unpack(_U64, what)

    def time(self, what: str) -> datetime:
        microseconds = self._unpack(_I64, what)
        try:
            return PG_EPOCH + timedelta(microseconds=microseconds)
        except OverflowError:
            raise PgoutputError(
                f"pgoutput {self._kind!r} message: {what} {microseconds} is out of range"
            ) from None

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
        end = self._pos + size
        if end > len(self._data):
            raise self._truncated(size, what)
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

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
        """TupleData; the hot path of a large transaction, so its fields are read inline."""
        data, size = self._data, len(self._data)
        values: list[str | Unchanged | None] = []
        for index in range(self.i16("column count")):
            pos = self._pos
            kind = data[pos] if pos < size else -1
            if kind == _TEXT and pos + 5 <= size:
                end = pos + 5 + _I32.unpack_from(data, pos + 1)[0]
                if pos + 5 <= end <= size:
                    try:
                        values.append(data[pos + 5 : end].decode("utf-8"))
                    except UnicodeDecodeError as error:
                        raise PgoutputError(
                            f"pgoutput {self._kind!r} message: column {index} is not UTF-8 "
                            f"({error})"
                        ) from None
                    self._pos = end
                    continue
            if kind == _NULL:
                values.append(None)
            elif kind == _UNCHANGED_TOAST:
                values.append(UNCHANGED)
            else:
                self._bad_value(kind, index)
            self._pos = pos + 1
        return tuple(values)

    def _bad_value(self, kind: int, index: int) -> NoReturn:
        """Raise the error of the value `row` could not read (kind -1: none left)."""
        what = f"column {index}"
        if kind < 0:
            raise self._truncated(1, what)
        if kind != _TEXT:
            raise PgoutputError(
                f"pgoutput {self._kind!r} message: {what} has value kind {chr(kind)!r} "
                "(only text 'n', 'u', 't' in protocol version 1)"
            )
        self._pos += 1
        length = self.i32(what)
        if length < 0:
            raise PgoutputError(f"pgoutput {self._kind!r} message: negative length for {what}")
        raise self._truncated(length, what)

    def finish(self) -> None:
        extra = len(self._data) - self._pos
        if extra:
            raise PgoutputError(f"pgoutput {self._kind!r} message has {extra} trailing bytes")
