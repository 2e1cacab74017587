"""The replication connection: stream the slot, hand each message over, confirm what is applied.

psycopg2's `LogicalReplicationConnection` carries the pgoutput stream (raw bytes, decoded by
`dashcache.cdc.pgoutput`). `read_message` answers the walsender's keepalives itself, also while
a large transaction is being applied chunk by chunk. The flush position sent back moves only to
the end of a transaction whose deltas are in Redis (and, with `DASHCACHE_REDIS_MIN_REPLICAS`,
on that many replicas), so a crash or a failover re-delivers and never skips. A transaction
applied but not yet safe is confirmed later, once a `WAIT` after it succeeds; the stream goes
on meanwhile.
"""

from __future__ import annotations

import select
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

import psycopg2
import psycopg2.extras
from sqlalchemy.engine import make_url

from dashcache.cdc.handler import Committed, Handler
from dashcache.cdc.pgoutput import decode
from dashcache.errors import DashcacheError, PgoutputError
from dashcache.logging import get_logger

log = get_logger(__name__)

TICK_SECONDS = 1.0
"""How often the stream loop runs its periodic work (status, slot watch) when idle or busy."""
STATUS_SECONDS = 1
"""How often psycopg2 sends the confirmed position back on its own."""
KEEPALIVE_SECONDS = 5.0
"""How often a long recompute between messages tells the walsender the consumer is alive."""
SESSION_OPTIONS = "-c DateStyle=ISO -c TimeZone=UTC"
"""Values in the stream are text: timestamps in ISO form with an offset, as the rows parse them."""


class SlotLost(DashcacheError):
    """The slot was dropped or invalidated (`wal_status = 'lost'`): it can stream no more."""


def replication_dsn(database_url: str) -> str:
    """A libpq URI for psycopg2 from the SQLAlchemy database URL."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class Stream:
    """One replication session on the slot."""

    def __init__(self, database_url: str, slot: str, publication: str) -> None:
        self.conn = psycopg2.connect(
            replication_dsn(database_url),
            connection_factory=psycopg2.extras.LogicalReplicationConnection,
            options=SESSION_OPTIONS,
        )
        self.cursor = self.conn.cursor()
        self.cursor.start_replication(
            slot_name=slot,
            decode=False,
            options={"proto_version": "1", "publication_names": publication},
            status_interval=STATUS_SECONDS,
        )
        self.confirmed: int | None = None
        """The last position this session confirmed."""
        self.unconfirmed: int | None = None
        """The end of the last transaction applied but not yet safe to confirm."""

    def run(
        self,
        handler: Handler,
        committed: Callable[[Committed], None],
        tick: Callable[[], None],
        stop: Callable[[], bool],
    ) -> None:
        """Stream until `stop()` is true; `tick` runs about once per second, `committed` after
        each transaction was applied and confirmed."""
        next_tick = time.monotonic()
        while not stop():
            message = self.cursor.read_message()
            if message is not None:
                try:
                    decoded = decode(message.payload)
                except PgoutputError as error:
                    log.error("cdc.undecodable", lsn=message.data_start, error=str(error))
                    continue
                done = handler.handle(decoded, message.data_start)
                if done is not None:
                    self.unconfirmed = done.end_lsn
                    if done.safe:
                        self._confirm()
                    committed(done)
            if time.monotonic() >= next_tick:
                if self.unconfirmed is not None and handler.applier.commit(self.unconfirmed):
                    self._confirm()
                tick()
                next_tick = time.monotonic() + TICK_SECONDS
            if message is None:
                select.select([self.cursor], [], [], TICK_SECONDS / 4)

    def _confirm(self) -> None:
        """Confirm the last transaction applied: the slot will not send it again."""
        assert self.unconfirmed is not None
        self.cursor.send_feedback(flush_lsn=self.unconfirmed)  # type: ignore[no-untyped-call]
        self.confirmed, self.unconfirmed = self.unconfirmed, None

    @contextmanager
    def alive(self) -> Iterator[None]:
        """While the block runs (a recompute between two messages), send status updates so the
        walsender does not time the session out."""
        done = threading.Event()

        def beat() -> None:
            while not done.wait(KEEPALIVE_SECONDS):
                try:
                    self.cursor.send_feedback(force=True)  # type: ignore[no-untyped-call]
                except psycopg2.Error:
                    return

        thread = threading.Thread(target=beat, name="dashcache-cdc-keepalive", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join(timeout=KEEPALIVE_SECONDS + 1)

    def close(self) -> None:
        """Close the session (the slot keeps its confirmed position)."""
        with suppress(psycopg2.Error):
            self.conn.close()
