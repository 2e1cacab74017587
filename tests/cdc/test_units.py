"""The pure parts of the WAL source: readiness, chunks of a transaction, widening xids."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from dashcache.cdc.changes import Chunk, Transaction, entries
from dashcache.cdc.handler import Handler, Hooks
from dashcache.cdc.pipeline import ChunkPipeline
from dashcache.cdc.readiness import Facts, check_ready, problems
from dashcache.errors import CdcNotReady
from dashcache.events.apply import Applied
from dashcache.events.types import EmailRow

READY = Facts(
    wal_level="logical",
    user="app",
    can_replicate=True,
    max_slots=10,
    slots_used=2,
    slot_exists=False,
    max_senders=10,
    senders_used=1,
    emails_table='mail."Emails"',
    emails_identity="f",
)
ROW = EmailRow(1, True, False, datetime(2026, 11, 20, tzinfo=UTC))
READ = replace(ROW, is_unread=False)


def test_ready_facts_have_no_problem() -> None:
    """A logical server, a replicating role, a free slot and sender, FULL identity: ready."""
    assert problems(READY) == []
    check_ready(READY)


def test_each_missing_piece_is_named_with_its_fix() -> None:
    """Every missing piece gives one line with the statement that fixes it."""
    facts = replace(
        READY,
        wal_level="replica",
        can_replicate=False,
        slots_used=10,
        senders_used=10,
        emails_identity="d",
    )
    found = problems(facts)
    assert len(found) == 5
    assert "ALTER SYSTEM SET wal_level = logical" in found[0]
    assert 'ALTER ROLE "app" REPLICATION;' in found[1]
    assert "max_replication_slots" in found[2]
    assert "max_wal_senders" in found[3]
    assert found[4].endswith('ALTER TABLE mail."Emails" REPLICA IDENTITY FULL;')
    with pytest.raises(CdcNotReady, match="REPLICA IDENTITY FULL"):
        check_ready(facts)
    assert problems(replace(READY, slots_used=10, slot_exists=True)) == []


def test_an_email_moved_between_accounts_leaves_one_and_joins_the_other() -> None:
    """The old account loses the row, the new one gains it, all accounts see an update."""
    assert dict(entries((1, ROW), (2, READ))) == {
        "all": "1,1,0,1795132800000000|1,0,0,1795132800000000",
        "a1": "1,1,0,1795132800000000|",
        "a2": "|1,0,0,1795132800000000",
    }
    assert dict(entries(None, (None, ROW))) == {"all": "|1,1,0,1795132800000000"}


def test_a_transaction_is_cut_into_chunks_with_stable_positions() -> None:
    """Full chunks come back as rows arrive; positions count every change, unchanged ones too."""
    transaction = Transaction(txid=5, chunk_rows=2)
    assert transaction.email(10, (1, ROW), (1, ROW), "update") is None
    assert transaction.email(11, None, (1, ROW), "insert") is None
    chunk = transaction.email(12, (1, ROW), (1, READ), "update")
    assert chunk is not None
    assert chunk.rows == 2
    assert [change.split(",")[:2] for change in chunk.changes["a1"]] == [["11", "1"], ["12", "2"]]
    assert transaction.take().rows == 0
    assert transaction.ops == {"update": 2, "insert": 1}


def test_xids_are_widened_with_a_reference_read_when_needed() -> None:
    """The next xid is read again only for an xid past the last one read; ids on both sides of
    an epoch boundary come out exact."""
    epoch = 7 << 32
    references = iter([epoch + 2**32 - 50, epoch + 2**32 + 30])
    reads: list[int] = []

    def next_xid() -> int:
        reads.append(1)
        return next(references)

    handler = Handler.__new__(Handler)
    handler.hooks = Hooks(next_xid, lambda kinds: None, lambda targets: None)
    handler.reference, handler.reference_at = 0, 0.0
    assert handler.full_xid(2**32 - 60) == epoch + 2**32 - 60
    assert handler.full_xid(2**32 - 55) == epoch + 2**32 - 55
    assert len(reads) == 1
    assert handler.full_xid(2**32 - 20) == epoch + 2**32 - 20
    assert len(reads) == 2
    assert handler.full_xid(10) == epoch + 2**32 + 10
    assert handler.full_xid(2**32 - 5) == epoch + 2**32 - 5
    assert len(reads) == 2


def test_the_pipeline_applies_chunks_in_order_and_hands_failures_back() -> None:
    """Chunks are applied one after the other in the order given; an apply that raised is
    raised again by `drain`, and the pipeline stays usable for the next transaction."""
    seen: list[int] = []

    def apply(chunk: Chunk) -> Applied:
        if chunk.rows < 0:
            raise ValueError("redis refused")
        seen.append(chunk.rows)
        return Applied(applied=chunk.rows)

    pipeline = ChunkPipeline(apply)
    for rows in range(1, 6):
        pipeline.put(Chunk(txid=1, rows=rows))
    assert [done.applied for done in pipeline.drain()] == [1, 2, 3, 4, 5]
    assert seen == [1, 2, 3, 4, 5]
    pipeline.put(Chunk(txid=2, rows=-1))
    with pytest.raises(ValueError, match="redis refused"):
        pipeline.drain()
    pipeline.put(Chunk(txid=3, rows=7))
    assert [done.applied for done in pipeline.drain()] == [7]
    pipeline.close()
