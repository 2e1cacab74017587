"""The pgoutput (protocol version 1) decoder: every message kind, bad input, and a real stream."""

from __future__ import annotations

import contextlib
import struct
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dashcache.cdc.pgoutput import (
    UNCHANGED,
    Begin,
    Column,
    Commit,
    Delete,
    Insert,
    LogicalMessage,
    Origin,
    Relation,
    Truncate,
    TypeInfo,
    Update,
    decode,
    format_lsn,
    parse_lsn,
)
from dashcache.errors import DashcacheError, PgoutputError
from tests.cdc.captured import CAPTURED

WHEN = datetime(2026, 12, 4, 3, 52, 10, 123456, tzinfo=UTC)
WHEN_US = (WHEN - datetime(2000, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def cstr(text: str) -> bytes:
    """A NUL-terminated UTF-8 string."""
    return text.encode() + b"\0"


def tuple_data(*values: object) -> bytes:
    """TupleData: text values, None for NULL, UNCHANGED for an unchanged TOASTed value."""
    out = struct.pack(">h", len(values))
    for value in values:
        if value is None:
            out += b"n"
        elif value is UNCHANGED:
            out += b"u"
        else:
            data = str(value).encode()
            out += b"t" + struct.pack(">i", len(data)) + data
    return out


def test_begin() -> None:
    """A Begin carries the commit's LSN, an aware UTC commit time and the 32-bit xid."""
    payload = b"B" + struct.pack(">Qqi", 0x16_B374D848, WHEN_US, 0x7FFF_FFF0)
    assert decode(payload) == Begin(0x16_B374D848, WHEN, 0x7FFF_FFF0)


def test_begin_xid_is_unsigned() -> None:
    """An xid past 2**31 decodes as the unsigned value PostgreSQL means."""
    payload = b"B" + struct.pack(">QqI", 1, 0, 0xFFFF_FFFE)
    message = decode(payload)
    assert message == Begin(1, datetime(2000, 1, 1, tzinfo=UTC), 0xFFFF_FFFE)


def test_commit() -> None:
    """A Commit carries flags, commit and end LSNs and the commit time."""
    payload = b"C" + struct.pack(">BQQq", 0, 100, 140, WHEN_US)
    assert decode(payload) == Commit(0, 100, 140, WHEN)


def test_relation() -> None:
    """A Relation names the table, its replica identity and each column with its key flag."""
    payload = (
        b"R"
        + struct.pack(">I", 16385)
        + cstr("public")
        + cstr("emails")
        + b"f"
        + struct.pack(">h", 2)
        + b"\x01"
        + cstr("id")
        + struct.pack(">Ii", 20, -1)
        + b"\x00"
        + cstr("subject")
        + struct.pack(">Ii", 1043, 259)
    )
    assert decode(payload) == Relation(
        16385,
        "public",
        "emails",
        "f",
        (Column(True, "id", 20, -1), Column(False, "subject", 1043, 259)),
    )


def test_insert() -> None:
    """An Insert's new row decodes text as str, NULL as None, 'u' as UNCHANGED."""
    payload = b"I" + struct.pack(">I", 7) + b"N" + tuple_data("1", None, "été", UNCHANGED)
    assert decode(payload) == Insert(7, ("1", None, "été", UNCHANGED))


def test_update_without_old_row() -> None:
    """An Update with no before-image has old None."""
    payload = b"U" + struct.pack(">I", 7) + b"N" + tuple_data("1", "t")
    assert decode(payload) == Update(7, None, False, ("1", "t"))


def test_update_with_full_old_row() -> None:
    """An 'O' before-image (REPLICA IDENTITY FULL) is the whole old row, not a key."""
    payload = (
        b"U" + struct.pack(">I", 7) + b"O" + tuple_data("1", "f") + b"N" + tuple_data("1", "t")
    )
    assert decode(payload) == Update(7, ("1", "f"), False, ("1", "t"))


def test_update_with_old_key() -> None:
    """A 'K' before-image is the old key only, flagged old_is_key."""
    payload = (
        b"U" + struct.pack(">I", 7) + b"K" + tuple_data("1", None) + b"N" + tuple_data("2", "t")
    )
    assert decode(payload) == Update(7, ("1", None), True, ("2", "t"))


def test_delete_full_and_key() -> None:
    """A Delete's old row is a whole row ('O') or a key ('K')."""
    full = b"D" + struct.pack(">I", 7) + b"O" + tuple_data("1", "t")
    key = b"D" + struct.pack(">I", 7) + b"K" + tuple_data("1", None)
    assert decode(full) == Delete(7, ("1", "t"), False)
    assert decode(key) == Delete(7, ("1", None), True)


@pytest.mark.parametrize(
    ("options", "cascade", "restart"),
    [(0, False, False), (1, True, False), (2, False, True), (3, True, True)],
)
def test_truncate(options: int, cascade: bool, restart: bool) -> None:
    """A Truncate lists its tables and decodes both option bits."""
    payload = b"T" + struct.pack(">iBII", 2, options, 7, 8)
    assert decode(payload) == Truncate((7, 8), cascade, restart)


def test_origin() -> None:
    """An Origin carries the origin's LSN and name."""
    payload = b"O" + struct.pack(">Q", 99) + cstr("node_a")
    assert decode(payload) == Origin(99, "node_a")


def test_type() -> None:
    """A Type message names a non-built-in type."""
    payload = b"Y" + struct.pack(">I", 16400) + cstr("public") + cstr("mood")
    assert decode(payload) == TypeInfo(16400, "public", "mood")


def test_logical_message() -> None:
    """A logical decoding message keeps its flag, LSN, prefix and raw content."""
    payload = b"M" + struct.pack(">BQ", 1, 77) + cstr("app") + struct.pack(">i", 3) + b"\x00\xff!"
    assert decode(payload) == LogicalMessage(True, 77, "app", b"\x00\xff!")


VALID = [
    b"B" + struct.pack(">Qqi", 1, 0, 5),
    b"C" + struct.pack(">BQQq", 0, 1, 2, 0),
    b"I" + struct.pack(">I", 7) + b"N" + tuple_data("1", None, "x"),
    b"U" + struct.pack(">I", 7) + b"O" + tuple_data("1") + b"N" + tuple_data("2"),
    b"R" + struct.pack(">I", 1) + cstr("s") + cstr("t") + b"d" + struct.pack(">h", 0),
    b"M" + struct.pack(">BQ", 0, 1) + cstr("p") + struct.pack(">i", 2) + b"ab",
]


@pytest.mark.parametrize("payload", VALID)
def test_every_truncation_is_refused(payload: bytes) -> None:
    """Every proper prefix of a valid message raises PgoutputError, never another error."""
    decode(payload)
    for end in range(len(payload)):
        with pytest.raises(PgoutputError):
            decode(payload[:end])


@pytest.mark.parametrize("payload", VALID)
def test_trailing_bytes_are_refused(payload: bytes) -> None:
    """A message with bytes past its end is refused, not silently accepted."""
    with pytest.raises(PgoutputError, match="trailing"):
        decode(payload + b"\0")


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (b"", "empty"),
        (b"S" + bytes(20), "unknown pgoutput message kind 'S'"),
        (b"I" + struct.pack(">I", 7) + b"O" + tuple_data("1"), "tuple kind"),
        (b"D" + struct.pack(">I", 7) + b"N" + tuple_data("1"), "tuple kind"),
        (b"I" + struct.pack(">I", 7) + b"N" + struct.pack(">h", 1) + b"b", "value kind 'b'"),
        (b"R" + struct.pack(">I", 1) + cstr("s") + cstr("t") + b"x" + b"\0\0", "replica identity"),
        (b"I" + struct.pack(">I", 7) + b"N" + struct.pack(">hci", 1, b"t", 1) + b"\xff", "UTF-8"),
        (b"M" + struct.pack(">BQ", 0, 1) + cstr("p") + struct.pack(">i", -1), "negative"),
        (b"B" + struct.pack(">Qqi", 1, 2**63 - 1, 5), "commit time .* out of range"),
        (b"I" + struct.pack(">I", 7) + b"N" + struct.pack(">hci", 1, b"t", -1), "negative"),
        (b"I" + struct.pack(">I", 7) + b"N" + struct.pack(">hci", 1, b"t", 9) + b"ab", "needs 9"),
    ],
)
def test_bad_messages_are_refused(payload: bytes, match: str) -> None:
    """Unknown kinds, wrong tuple kinds, binary values and bad text raise a clear PgoutputError."""
    with pytest.raises(PgoutputError, match=match) as raised:
        decode(payload)
    assert isinstance(raised.value, DashcacheError)


@given(kind=st.sampled_from(b"BCORYIUDTMX"), body=st.binary(max_size=64))
def test_any_bytes_decode_or_raise_pgoutput_error(kind: int, body: bytes) -> None:
    """Arbitrary bytes after any kind decode to a message or raise PgoutputError, nothing else."""
    with contextlib.suppress(PgoutputError):
        decode(bytes([kind]) + body)


@pytest.mark.parametrize("payload", VALID)
@given(data=st.data())
def test_mutated_messages_decode_or_raise_pgoutput_error(
    payload: bytes, data: st.DataObject
) -> None:
    """A valid message with one byte changed decodes or raises PgoutputError, nothing else."""
    at = data.draw(st.integers(min_value=0, max_value=len(payload) - 1))
    mutated = payload[:at] + bytes([data.draw(st.integers(0, 255))]) + payload[at + 1 :]
    with contextlib.suppress(PgoutputError):
        decode(mutated)


@pytest.mark.parametrize(
    ("lsn", "text"),
    [(0, "0/0"), (0x16_B374D848, "16/B374D848"), (0xFFFFFFFF_FFFFFFFF, "FFFFFFFF/FFFFFFFF")],
)
def test_lsn_text_round_trip(lsn: int, text: str) -> None:
    """LSNs print as PostgreSQL prints them and parse back, in either case."""
    assert format_lsn(lsn) == text
    assert parse_lsn(text) == lsn
    assert parse_lsn(text.lower()) == lsn


@pytest.mark.parametrize("text", ["", "16", "16/", "/1", "x/1", "1/2/3", "123456789/0", " 1/2"])
def test_bad_lsn_text_is_refused(text: str) -> None:
    """A string that is not an LSN raises PgoutputError naming it."""
    with pytest.raises(PgoutputError, match="not an LSN"):
        parse_lsn(text)


@pytest.mark.parametrize("lsn", [-1, 1 << 64])
def test_out_of_range_lsn_is_refused(lsn: int) -> None:
    """Only 64-bit unsigned LSNs can be formatted."""
    with pytest.raises(PgoutputError, match="out of range"):
        format_lsn(lsn)


def at(microsecond: int) -> datetime:
    """A commit time of the captured stream."""
    return datetime(2026, 12, 4, 4, 13, 19, microsecond, tzinfo=UTC)


CATEGORIES = Relation(
    16384, "public", "categories", "d", (Column(True, "id", 20, -1), Column(False, "name", 25, -1))
)
EMAILS = Relation(
    16391,
    "public",
    "emails",
    "f",
    tuple(
        Column(True, name, oid, -1)
        for name, oid in [
            ("id", 20),
            ("account_id", 20),
            ("category_id", 20),
            ("created_at", 1184),
            ("is_unread", 16),
            ("is_auto_labeled", 16),
        ]
    ),
)
NOTES = Relation(
    16401,
    "public",
    "notes",
    "d",
    (Column(True, "id", 23, -1), Column(False, "mood", 16397, -1), Column(False, "body", 25, -1)),
)
ROW_10 = ("10", "3", "1", "2026-12-04 03:52:10.123456+00", "t", "f")
ROW_11 = ("11", "3", None, "2026-12-04 03:52:11+00", "f", "t")
EXPECTED = [
    Begin(0x1551DC8, at(753752), 731),
    CATEGORIES,
    Insert(16384, ("1", "Inbox")),
    Commit(0, 0x1551DC8, 0x1551DF8, at(753752)),
    Begin(0x1551F90, at(754093), 732),
    EMAILS,
    Insert(16391, ROW_10),
    Insert(16391, ROW_11),
    Commit(0, 0x1551F90, 0x1551FC0, at(754093)),
    Begin(0x1552068, at(754502), 733),
    Update(16391, ROW_10, False, (*ROW_10[:4], "f", "f")),
    Commit(0, 0x1552068, 0x1552098, at(754502)),
    Begin(0x15520F0, at(754715), 734),
    Delete(16391, ROW_11, False),
    Commit(0, 0x15520F0, 0x1552120, at(754715)),
    Begin(0x15521B8, at(754960), 735),
    TypeInfo(16397, "public", "mood"),
    NOTES,
    Update(16401, None, False, ("1", "busy", UNCHANGED)),
    Commit(0, 0x15521B8, 0x15521E8, at(754960)),
    Begin(0x1552288, at(755293), 736),
    LogicalMessage(True, 0x1552230, "dashcache", b"hello"),
    Update(16384, None, False, ("1", "Promotions")),
    Commit(0, 0x1552288, 0x15522B8, at(755293)),
    Begin(0x15533E8, at(756595), 737),
    EMAILS,
    CATEGORIES,
    Truncate((16391, 16384), False, True),
    Commit(0, 0x15533E8, 0x15535F0, at(756595)),
]


def test_real_stream() -> None:
    """Payloads captured from PostgreSQL 15 decode to the changes that were made: inserts, a
    REPLICA IDENTITY FULL update and delete, an unchanged TOASTed value, a type, a logical
    message, a TRUNCATE ... RESTART IDENTITY, each inside its Begin and Commit."""
    assert [decode(bytes.fromhex(payload)) for payload in CAPTURED] == EXPECTED
