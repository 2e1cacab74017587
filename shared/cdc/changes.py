"""One replicated transaction's email changes, cut into chunks of delta entries: pure.

pgoutput (protocol version 1) sends a transaction only after it committed, every change between
its BEGIN and its COMMIT; a chunk is applied as soon as it holds `chunk_rows` changes, so a
million-row statement needs the memory of one chunk, and the slot is confirmed only after the
COMMIT's chunk is applied. Positions count every email change of the transaction in WAL order,
so a re-delivered transaction gives each change the same identity again.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from dashcache.cdc.apply import Change
from dashcache.events.deltas import row_text
from dashcache.events.targeting import Target
from dashcache.events.types import EmailRow
from dashcache.keys import ALL_SCOPE, scope_token

OPS = ("insert", "update", "delete", "truncate")
"""Kinds of replicated change (the `op` label of `dashcache_cdc_changes_total`)."""

Side = tuple[int | None, EmailRow]
"""One side of an email change: its account (None single-tenant) and its counted fields."""


@dataclass(slots=True)
class Chunk:
    """Delta entries of consecutive changes of one transaction, by scope token."""

    txid: int
    changes: dict[str, list[Change]] = field(default_factory=dict)
    rows: int = 0


@dataclass(slots=True)
class Transaction:
    """What one transaction changed, gathered as its messages arrive."""

    txid: int
    chunk_rows: int
    ops: Counter[str] = field(default_factory=Counter)
    stale: set[Target] = field(default_factory=set)
    """Values found without a state by the chunks applied so far (to recompute at its commit)."""
    structural: int = 0
    """Structural changes (TRUNCATE, category changes) seen so far: the next one's position."""
    position: int = 0
    chunk: Chunk = field(init=False)

    def __post_init__(self) -> None:
        self.chunk = Chunk(self.txid)

    def email(
        self, email_id: int, before: Side | None, after: Side | None, op: str
    ) -> Chunk | None:
        """Add one email change; return a full chunk to apply now, else None."""
        position = self.position
        self.position += 1
        self.ops[op] += 1
        if before is not None and after is not None and before == after:
            return None
        for token, rows in entries(before, after):
            self.chunk.changes.setdefault(token, []).append(f"{email_id},{position},{rows}\n")
        self.chunk.rows += 1
        if self.chunk.rows >= self.chunk_rows:
            return self.take()
        return None

    def take(self) -> Chunk:
        """The changes gathered since the last chunk (possibly none), as a chunk."""
        chunk, self.chunk = self.chunk, Chunk(self.txid)
        return chunk


def entries(before: Side | None, after: Side | None) -> list[tuple[str, str]]:
    """(scope token, `before|after`) of one change: its account's scope and `all`; an email
    moved to another account leaves the old one and joins the new one."""
    old = None if before is None else before[1]
    new = None if after is None else after[1]
    old_text, new_text = row_text(old), row_text(new)
    whole = f"{old_text}|{new_text}"
    if before is None or after is None or before[0] == after[0]:
        account = before[0] if before is not None else after[0] if after is not None else None
        token = scope_token(account)
        return [(ALL_SCOPE, whole)] if token == ALL_SCOPE else [(ALL_SCOPE, whole), (token, whole)]
    return [
        (ALL_SCOPE, whole),
        (scope_token(before[0]), f"{old_text}|"),
        (scope_token(after[0]), f"|{new_text}"),
    ]
