"""`dashcache cdc run`: check, wait for the lock, set up, make the values exact, then stream.

Start-up: the readiness checks (`CdcNotReady` names what is missing); the one-consumer lock
(standbys wait here); the publication and the slot, created when missing; a full recompute pass
whose snapshot is taken after the slot exists, so every value covers what the slot will not
stream (`cdc.ready` after it); then the stream. A pass is owed from just before a slot is
created until it finished (field `pass_owed` of the status hash), so a consumer that died in
between leaves it to the next one. A lost or dropped slot is logged (`cdc.slot_lost`), made
again, and the pass runs again. A broken connection is retried; nothing confirmed is lost.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from functools import cached_property

import psycopg2
import redis
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from dashcache.cdc.apply import WalApplier
from dashcache.cdc.handler import Committed, Handler, Hooks
from dashcache.cdc.lock import ConsumerLock
from dashcache.cdc.pgoutput import format_lsn
from dashcache.cdc.readiness import check_ready, read_facts
from dashcache.cdc.slot import drop_slot, ensure_publication, ensure_slot, next_xid, slot_state
from dashcache.cdc.status import StatusWriter
from dashcache.cdc.stream import SlotLost, Stream
from dashcache.cdc.structure import Restructure, StructureApplier
from dashcache.config import Settings
from dashcache.events.publisher import EventPublisher
from dashcache.events.targeting import Target
from dashcache.keys import KeySchema
from dashcache.logging import get_logger
from dashcache.metrics import metrics_for
from dashcache.recompute import recompute_every_scope
from dashcache.schema.check import engine_for
from dashcache.schema.tables import tables_of
from dashcache.store import RedisStore, make_redis

log = get_logger(__name__)

PASS_OWED = "pass_owed"  # noqa: S105 (a field name)
RETRY_SECONDS = 1.0


def mapped_tables_sql(engine: Engine) -> tuple[str, str]:
    """The emails and categories tables as SQL spells them (quoted where needed)."""
    tables = tables_of(engine)
    preparer = engine.dialect.identifier_preparer
    return preparer.format_table(tables.emails), preparer.format_table(tables.categories)


def check_database(settings: Settings, engine: Engine) -> None:
    """Raise `CdcNotReady` naming each missing piece, with its fix."""
    emails, _ = mapped_tables_sql(engine)
    with engine.connect() as conn:
        check_ready(read_facts(conn, settings.cdc_slot, emails))


class Consumer:
    """One `cdc run` process: standby or active consumer of the slot."""

    def __init__(self, settings: Settings, stop: threading.Event) -> None:
        self.settings = settings
        self.stop = stop
        self.engine = engine_for(settings)
        self.client = make_redis(settings.redis_url, max(settings.redis_timeout_seconds, 5.0))
        self.keys = KeySchema(settings.key_prefix)
        self.store = RedisStore(
            self.client, self.keys, settings.ttl_seconds, settings.max_value_bytes
        )
        self.holder = f"{socket.gethostname()}:{os.getpid()}"
        self.lock = ConsumerLock(
            self.client, self.keys.cdc_lock, self.holder, settings.cdc_lock_seconds
        )
        self.status = StatusWriter(
            self.client, self.keys, settings.cdc_slot, settings.cdc_publication, self.holder
        )
        self.stream: Stream | None = None
        self.streamed = False
        """Whether this consumer streamed from the slot: a slot missing after that was lost."""

    @cached_property
    def structure(self) -> StructureApplier:
        """Applies TRUNCATE and category changes in place to every scope."""
        return StructureApplier(self.client, self.keys, self.settings.ttl_seconds)

    @cached_property
    def publisher(self) -> EventPublisher:
        """Marks and sends recomputes of values that cannot take deltas (built when needed)."""
        return EventPublisher(self.settings, self.client)

    def run(self) -> None:
        """Check, then consume (or wait as a standby) until `stop` is set."""
        check_database(self.settings, self.engine)
        try:
            while not self.stop.is_set():
                if not self.lock.wait(self.stop):
                    break
                log.info("cdc.active", consumer=self.holder, slot=self.settings.cdc_slot)
                try:
                    self._consume()
                finally:
                    self.lock.release()
        finally:
            self.engine.dispose()
            self.client.close()

    def _consume(self) -> None:
        """Stream while the lock is ours; recover from a lost slot or a broken connection."""
        while not self._should_stop():
            try:
                self._session()
            except SlotLost as error:
                log.warning("cdc.slot_lost", slot=self.settings.cdc_slot, reason=str(error))
                self.streamed = False
                self._drop_if_lost()
            except (psycopg2.Error, redis.RedisError, SQLAlchemyError) as error:
                log.warning("cdc.disconnected", error=f"{type(error).__name__}: {error}")
                self.stop.wait(RETRY_SECONDS)
            finally:
                if self.stream is not None:
                    self.stream.close()
                    self.stream = None

    def _should_stop(self) -> bool:
        return self.stop.is_set() or self.lock.lost.is_set()

    def _session(self) -> None:
        settings = self.settings
        emails, categories = mapped_tables_sql(self.engine)
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            ensure_publication(conn, settings.cdc_publication, (emails, categories))
            state = slot_state(conn, settings.cdc_slot)
            if state is not None and state.lost:
                raise SlotLost(f"slot {settings.cdc_slot} was invalidated (wal_status = 'lost')")
            if state is None:
                if self.streamed:
                    log.warning("cdc.slot_lost", slot=settings.cdc_slot, reason="slot is gone")
                    self.streamed = False
                self.client.hset(self.keys.cdc_status, PASS_OWED, "1")
                ensure_slot(conn, settings.cdc_slot)
                log.info("cdc.slot_created", slot=settings.cdc_slot)
        if self.client.hget(self.keys.cdc_status, PASS_OWED):
            result = recompute_every_scope(self.engine, self.store, settings.max_breakdown)
            metrics_for(self.settings).count_drift(result.drift, "cdc")
            self.client.hdel(self.keys.cdc_status, PASS_OWED)
            log.info("cdc.pass", scopes=result.scopes, written=result.written)
        try:
            self.stream = Stream(settings.database_url, settings.cdc_slot, settings.cdc_publication)
        except psycopg2.Error as error:
            self._raise_if_lost(str(error))
            raise
        handler = Handler(
            tables_of(self.engine).mapping,
            WalApplier(self.client, self.keys, settings.ttl_seconds),
            self.client,
            self.keys,
            settings.cdc_chunk_rows,
            Hooks(self._next_xid, self._restructure, self._recompute_stale),
        )
        self.streamed = True
        self._tick()
        log.info("cdc.ready", slot=settings.cdc_slot, publication=settings.cdc_publication)
        try:
            self.stream.run(handler, self._committed, self._tick, self._should_stop)
        except psycopg2.Error as error:
            self._raise_if_lost(str(error))
            raise
        finally:
            handler.close()

    def _committed(self, done: Committed) -> None:
        self.status.applied(done.lag_seconds, time.time())
        self.status.changes.update(done.ops)

    def _tick(self) -> None:
        """Watch the slot and write the status (about once per second)."""
        with self.engine.connect() as conn:
            state = slot_state(conn, self.settings.cdc_slot)
        if state is None or state.lost:
            raise SlotLost(
                f"slot {self.settings.cdc_slot} is {'gone' if state is None else 'lost'}"
            )
        confirmed = self.stream.confirmed if self.stream is not None else None
        lsn = format_lsn(confirmed) if confirmed is not None else state.confirmed_lsn
        self.status.write(lsn, state.retained_bytes, time.time())

    def _raise_if_lost(self, reason: str) -> None:
        with self.engine.connect() as conn:
            state = slot_state(conn, self.settings.cdc_slot)
        if state is None or state.lost:
            raise SlotLost(reason.strip().splitlines()[0] if reason.strip() else "slot lost")

    def _drop_if_lost(self) -> None:
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            state = slot_state(conn, self.settings.cdc_slot)
            if state is not None and state.lost:
                drop_slot(conn, self.settings.cdc_slot)

    def _next_xid(self) -> int:
        with self.engine.connect() as conn:
            return next_xid(conn)

    def _restructure(self, change: Restructure) -> None:
        assert self.stream is not None
        with self.stream.alive():
            scopes, states = self.structure.apply(change)
        log.info(
            "cdc.restructured",
            op=change.op.value,
            txid=str(change.txid),
            category_id=change.category_id,
            scopes=scopes,
            states=states,
        )

    def _recompute_stale(self, targets: set[Target]) -> None:
        runs = self.publisher.coalescer.mark(targets)
        self.publisher.send_runs(runs)
