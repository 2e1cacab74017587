"""Turning decoded pgoutput messages into applied deltas, one transaction at a time.

BEGIN opens a transaction (its xid widened to 64 bits); each email change joins its current
chunk, applied as soon as the chunk is full; a category change or a TRUNCATE of a mapped table
is applied in place to every scope's states where it comes (`structure.py`: no recount), once
the changes before it are in Redis; COMMIT applies the last chunk, and only then returns the
position the slot may be confirmed at. A row that cannot
become a delta is dead-lettered with its position and the stream goes on. Chunks are applied by
a thread of their own (`ChunkPipeline`) while the next ones are parsed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from dashcache.cdc.apply import WalApplier
from dashcache.cdc.changes import Side, Transaction
from dashcache.cdc.pgoutput import (
    Begin,
    Commit,
    Delete,
    Insert,
    Message,
    Relation,
    Row,
    Truncate,
    Update,
    format_lsn,
)
from dashcache.cdc.pipeline import ChunkPipeline
from dashcache.cdc.rows import CategoryColumns, EmailColumns, category_of, email_row
from dashcache.cdc.structure import Op, Restructure
from dashcache.cdc.xids import widen
from dashcache.errors import BadRow, InvalidEvent
from dashcache.events.deadletter import dead_letter
from dashcache.events.targeting import Target
from dashcache.keys import KeySchema
from dashcache.logging import get_logger
from dashcache.schema.mapping import SchemaMapping, TableName

log = get_logger(__name__)

REFERENCE_SECONDS = 60.0
"""Longest a reference for widening xids is used (far less than 2**31 transactions take)."""


@dataclass(frozen=True, slots=True)
class Committed:
    """A transaction applied in full: where the slot may be confirmed, and its lag."""

    end_lsn: int
    lag_seconds: float
    ops: dict[str, int]


@dataclass(slots=True)
class Hooks:
    """What the handler needs from outside: the next 64-bit xid, a structural change applied to
    every scope, and a way to recompute values that cannot take deltas."""

    next_xid: Callable[[], int]
    restructure: Callable[[Restructure], None]
    recompute_stale: Callable[[set[Target]], None]


def matches(table: TableName, relation: Relation) -> bool:
    """Whether a Relation message is the mapped table (no schema in the mapping: `public`)."""
    return relation.name == table.name and relation.namespace == (table.schema or "public")


class Handler:
    """Applies the messages of one replication stream, in order."""

    def __init__(
        self,
        mapping: SchemaMapping,
        applier: WalApplier,
        client: redis.Redis,
        keys: KeySchema,
        chunk_rows: int,
        hooks: Hooks,
    ) -> None:
        self.mapping = mapping
        self.applier = applier
        self.client = client
        self.keys = keys
        self.chunk_rows = chunk_rows
        self.hooks = hooks
        self.emails: dict[int, EmailColumns] = {}
        self.categories: dict[int, CategoryColumns] = {}
        self.reference = 0
        self.reference_at = 0.0
        self.transaction: Transaction | None = None
        self.pipeline = ChunkPipeline(lambda chunk: applier.apply(chunk.txid, chunk.changes))

    def handle(self, message: Message, lsn: int) -> Committed | None:
        """Apply one message (at WAL position `lsn`); a Committed when it ended a transaction."""
        if isinstance(message, Begin):
            self.transaction = Transaction(self.full_xid(message.xid), self.chunk_rows)
        elif isinstance(message, Relation):
            self._relation(message)
        elif isinstance(message, Insert | Update | Delete):
            self._change(message, lsn)
        elif isinstance(message, Truncate):
            self._truncate(message)
        elif isinstance(message, Commit):
            return self._commit(message)
        return None

    def full_xid(self, xid: int) -> int:
        """The 64-bit id of a 32-bit xid; the reference (the next xid) is read again when the xid
        is past it, or when it is a minute old (so 2**31 ids can never go by unseen)."""
        low = self.reference & 0xFFFFFFFF
        stale = time.monotonic() - self.reference_at > REFERENCE_SECONDS
        if self.reference == 0 or stale or 0 < (xid - low) % (1 << 32) < 1 << 31:
            self.reference = self.hooks.next_xid()
            self.reference_at = time.monotonic()
        return widen(xid, self.reference)

    def _relation(self, relation: Relation) -> None:
        if matches(self.mapping.emails.table, relation):
            self.emails[relation.oid] = EmailColumns.of(self.mapping, relation)
        elif matches(self.mapping.categories.table, relation):
            self.categories[relation.oid] = CategoryColumns.of(self.mapping, relation)

    def _change(self, message: Insert | Update | Delete, lsn: int) -> None:
        transaction = self._current()
        op = type(message).__name__.lower()
        if message.oid in self.categories:
            transaction.ops[op] += 1
            try:
                changes = _category_changes(self.categories[message.oid], message)
            except BadRow as error:
                self._dead_letter(message, error, lsn)
                return
            for change, category_id, name in changes:
                self._restructure(change, category_id, name)
            return
        columns = self.emails.get(message.oid)
        if columns is None:
            return
        if isinstance(message, Update) and _same_counted(columns, message):
            transaction.position += 1
            transaction.ops[op] += 1
            return
        try:
            email_id, before, after = _sides(columns, message)
        except BadRow as error:
            transaction.position += 1
            transaction.ops[op] += 1
            self._dead_letter(message, error, lsn)
            return
        chunk = transaction.email(email_id, before, after, op)
        if chunk is not None:
            self.pipeline.put(chunk)

    def _truncate(self, message: Truncate) -> None:
        transaction = self._current()
        truncated = set(message.oids)
        if truncated.intersection(set(self.emails) | set(self.categories)):
            transaction.ops["truncate"] += 1
        if truncated.intersection(self.categories):
            self._restructure(Op.TRUNCATE_CATEGORIES)
        if truncated.intersection(self.emails):
            self._restructure(Op.TRUNCATE_EMAILS)

    def _restructure(self, op: Op, category_id: int = 0, name: str = "") -> None:
        """Apply a structural change once every change before it is in Redis."""
        transaction = self._current()
        self._flush(transaction)
        position = transaction.structural
        transaction.structural += 1
        self.hooks.restructure(Restructure(transaction.txid, position, op, category_id, name))

    def _flush(self, transaction: Transaction) -> None:
        """Apply the transaction's changes gathered so far; keep what they found stale."""
        self.pipeline.put(transaction.take())
        transaction.stale.update(t for done in self.pipeline.drain() for t in done.stale)

    def _commit(self, message: Commit) -> Committed:
        transaction = self._current()
        self._flush(transaction)
        if transaction.stale:
            self.hooks.recompute_stale(transaction.stale)
        self.transaction = None
        lag = max(time.time() - message.commit_time.timestamp(), 0.0)
        return Committed(message.end_lsn, lag, dict(transaction.ops))

    def close(self) -> None:
        """Stop the thread that applies chunks."""
        self.pipeline.close()

    def _current(self) -> Transaction:
        if self.transaction is None:
            raise BadRow("a change arrived outside a transaction", column="", value=None)
        return self.transaction

    def _dead_letter(self, message: Insert | Update | Delete, error: BadRow, lsn: int) -> None:
        payload = {
            "lsn": format_lsn(lsn),
            "op": type(message).__name__.lower(),
            "txid": str(self._current().txid),
        }
        dead_letter(
            self.client,
            self.keys,
            payload,
            InvalidEvent(str(error), field=error.column),
            log_event="cdc.row_rejected",
            lsn=format_lsn(lsn),
        )


def _category_changes(
    columns: CategoryColumns, message: Insert | Update | Delete
) -> list[tuple[Op, int, str]]:
    """The structural changes of one categories row: an insert, a rename (a new id is a delete
    of the old one and an insert), or a delete. `BadRow` for a NULL name or a bad id."""
    if isinstance(message, Delete):
        return [(Op.DELETE, category_of(columns, message.old)[0], "")]
    category_id, name = category_of(columns, message.new)
    if name is None:
        raise BadRow("a category's name is NULL", column=columns.name.key, value=None)
    if isinstance(message, Insert):
        return [(Op.INSERT, category_id, name)]
    old_id = category_id if message.old is None else category_of(columns, message.old)[0]
    if old_id != category_id:
        return [(Op.DELETE, old_id, ""), (Op.INSERT, category_id, name)]
    return [(Op.RENAME, category_id, name)]


def _sides(
    columns: EmailColumns, message: Insert | Update | Delete
) -> tuple[int, Side | None, Side | None]:
    """(email id, before, after) of one change; `BadRow` when a side cannot be read, or when
    the before-image is missing (the table lacks REPLICA IDENTITY FULL)."""
    old: Row | None = None
    new: Row | None = None
    if isinstance(message, Insert):
        new = message.new
    elif isinstance(message, Update):
        old, new = message.old, message.new
        if old is None or message.old_is_key:
            raise BadRow(_NO_BEFORE, column="", value=None)
    else:
        old = message.old
        if message.old_is_key:
            raise BadRow(_NO_BEFORE, column="", value=None)
    before = after = None
    email_id = 0
    if old is not None:
        account, email_id, row = email_row(columns, old)
        before = (account, row)
    if new is not None:
        account, email_id, row = email_row(columns, new)
        after = (account, row)
    return email_id, before, after


def _same_counted(columns: EmailColumns, message: Update) -> bool:
    """Whether an update left every mapped column's text as it was (nothing to count): decided
    without parsing, as most updates of a real table touch other columns."""
    old, new = message.old, message.new
    if old is None or message.old_is_key:
        return False
    positions = [columns.id, columns.category, columns.created_at]
    positions += [columns.unread.column, columns.auto_labeled.column]
    if columns.account is not None:
        positions.append(columns.account)
    return all(
        at.index < len(old) and at.index < len(new) and old[at.index] == new[at.index]
        for at in positions
    )


_NO_BEFORE = (
    "the change carries no before-image of the row: the emails table needs "
    "REPLICA IDENTITY FULL (see dashcache cdc check)"
)
