"""TRUNCATE and category changes in the middle of a stream: no stall, no wrong read, kill -9 safe.

The consumer applies them in place (shared/cdc/structure.py) without reading the database, so
with the categories table locked (what a recount reads) the stream goes on; readers polling all
along only ever see a value that was exact at some commit.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import pytest
import redis
from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session

from dashcache.cdc.structure import Op, Restructure, StructureApplier
from dashcache.config import Settings
from dashcache.keys import KeySchema, Kind, Scope
from dashcache.recompute import recompute_every_scope, to_data
from dashcache.stats import compute_scope
from dashcache.store import RedisStore
from tests.cdc.test_process import cdc_process, kill
from tests.cdc.walhelpers import BOTH, consuming, exact, seed, sql, wait_exact, warm
from tests.eventing import envelope
from tests.helpers import wait_until

SCOPES: list[Scope] = [None, 1, 2, 3]

Key = tuple[Kind, Scope]


def canonical(data: object) -> str:
    """One value's data as comparable text."""
    return json.dumps(data, sort_keys=True)


class Truth:
    """The exact values of every key at each commit, counted through one connection (which may
    hold the categories lock) as of the stored values' computation time."""

    def __init__(self, conn: Connection, as_of: datetime, max_breakdown: int) -> None:
        self.conn = conn
        self.as_of = as_of
        self.max_breakdown = max_breakdown
        self.allowed: dict[Key, set[str]] = {(k, s): set() for s in SCOPES for k in BOTH}
        self.last: dict[Key, str] = {}

    def record(self) -> None:
        """Count every key now (after a commit) and allow what it holds. In a savepoint rolled
        back after: the locks its reads take go with it (the categories lock stays)."""
        nested = self.conn.begin_nested()
        try:
            with Session(bind=self.conn) as session:
                for scope in SCOPES:
                    stats = compute_scope(session, scope, self.as_of, self.max_breakdown)
                    for kind in BOTH:
                        value = canonical(to_data(stats, kind))
                        self.allowed[(kind, scope)].add(value)
                        self.last[(kind, scope)] = value
        finally:
            nested.rollback()


@contextmanager
def polling(client: redis.Redis, settings: Settings) -> Iterator[dict[Key, set[str]]]:
    """Two threads reading every key over and over (each round one MGET, so the consumer and the
    test keep the interpreter too) until the block ends; the data they read, per key."""
    keys = KeySchema(settings.key_prefix)
    order: list[Key] = [(k, s) for s in SCOPES for k in BOTH]
    names = [keys.value(kind, scope) for kind, scope in order]
    raws: list[set[bytes]] = [set() for _ in order]
    stop = threading.Event()

    def read() -> None:
        while not stop.wait(0.002):
            for found, raw in zip(raws, client.mget(names), strict=True):
                if raw is not None:
                    found.add(raw)

    threads = [threading.Thread(target=read, daemon=True) for _ in range(2)]
    for thread in threads:
        thread.start()
    seen: dict[Key, set[str]] = {}
    try:
        yield seen
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        for key, found in zip(order, raws, strict=True):
            seen[key] = {canonical(json.loads(raw)["data"]) for raw in found}


def shows(client: redis.Redis, settings: Settings, truth: Truth) -> bool:
    """Whether every stored value is the last exact one."""
    return all(
        canonical(envelope(client, settings, kind, scope).get("data")) == value
        for (kind, scope), value in truth.last.items()
    )


INSERT_UNCATEGORISED = (
    "INSERT INTO emails (message_id, account_id, category_id, is_unread, is_auto_labeled,"
    " created_at, updated_at) SELECT :tag || g, g % 3 + 1, NULL, g % 2 = 0, false,"
    " now() - interval '3 days', now() FROM generate_series(1, 7) g"
)


FLIP = "UPDATE emails SET is_unread = NOT is_unread WHERE id % 500 = :n"
"""Fewer rows than a chunk: a transaction of many chunks shows its chunks as they are applied."""


@pytest.fixture
def without_foreign_key(wal_engine: Engine) -> Iterator[None]:
    """The emails' foreign key dropped for the test (its check of an insert locks `categories`,
    which the test holds), then added again."""
    sql(wal_engine, "ALTER TABLE emails DROP CONSTRAINT emails_category_id_fkey")
    try:
        yield
    finally:
        sql(
            wal_engine,
            "UPDATE emails SET category_id = NULL"
            " WHERE category_id NOT IN (SELECT id FROM categories)",
            "ALTER TABLE emails ADD CONSTRAINT emails_category_id_fkey FOREIGN KEY (category_id)"
            " REFERENCES categories (id) ON DELETE SET NULL",
        )


@pytest.mark.usefixtures("without_foreign_key")
def test_truncate_and_rename_mid_stream_never_stall_it_nor_show_a_wrong_number(
    cdc_settings: Settings, wal_engine: Engine, redis_client: redis.Redis
) -> None:
    """A rename and a TRUNCATE reach the consumer while the test holds an ACCESS EXCLUSIVE lock
    on `categories` (a recount would wait on it): the changes after each keep arriving and their
    values change while the lock is held; every value any reader saw was exact at some commit;
    every value is exact at the end."""
    seed(wal_engine, per_account=3000)
    warm(cdc_settings)
    as_of = datetime.fromisoformat(
        envelope(redis_client, cdc_settings, BOTH[0], None)["computed_at"]
    )
    with (
        wal_engine.connect() as holder,
        consuming(cdc_settings) as logs,
        polling(redis_client, cdc_settings) as seen,
    ):
        truth = Truth(holder, as_of, cdc_settings.max_breakdown)
        truth.record()
        holder.commit()
        # A long transaction of uncounted columns keeps the consumer busy while the rename
        # commits and the lock is taken: the rename reaches it with the lock held.
        sql(wal_engine, *["UPDATE emails SET updated_at = now()"] * 6)
        sql(wal_engine, "UPDATE categories SET name = 'Zeta' WHERE id = 1")
        holder.execute(text("LOCK TABLE categories IN ACCESS EXCLUSIVE MODE"))
        breakdown = envelope(redis_client, cdc_settings, BOTH[1], None)["data"]
        assert "Zeta" not in [name for name, _ in breakdown], "the rename came before the lock"
        truth.record()
        for n in range(3):
            sql(wal_engine, INSERT_UNCATEGORISED.replace(":tag", f"'r{n}-'"))
            truth.record()
            sql(wal_engine, FLIP.replace(":n", str(n)))
            truth.record()
        wait_until(lambda: shows(redis_client, cdc_settings, truth), "values after the rename")
        sql(wal_engine, "SET LOCAL lock_timeout = '60s'", "TRUNCATE emails")
        truth.record()
        for n in range(3):
            sql(wal_engine, INSERT_UNCATEGORISED.replace(":tag", f"'t{n}-'"))
            truth.record()
        wait_until(lambda: shows(redis_client, cdc_settings, truth), "values after the TRUNCATE")
        holder.rollback()
        sql(wal_engine, "UPDATE emails SET category_id = 1 WHERE id % 2 = 0")
        truth.record()
        holder.commit()
        wait_until(lambda: shows(redis_client, cdc_settings, truth), "values after the lock")
    wrong = {
        key: sorted(values - truth.allowed[key])[:3]
        for key, values in seen.items()
        if values - truth.allowed[key]
    }
    assert not wrong, f"readers saw values exact at no commit: {wrong}"
    assert all(seen.values()), "a key was never read"
    assert not [e for e in logs if e["event"] == "cdc.recomputed"]
    wait_exact(redis_client, cdc_settings, wal_engine)


def test_a_recompute_from_before_a_truncate_is_refused_and_a_change_applies_once(
    cdc_settings: Settings, wal_engine: Engine, redis_client: redis.Redis
) -> None:
    """A change applied again (a re-delivered transaction) changes no state; a recompute whose
    snapshot predates the change is refused by the scope's barrier, even on an emptied key."""
    seed(wal_engine)
    warm(cdc_settings)
    keys = KeySchema(cdc_settings.key_prefix)
    store = RedisStore(redis_client, keys, cdc_settings.ttl_seconds)
    applier = StructureApplier(redis_client, keys, cdc_settings.ttl_seconds)
    with wal_engine.connect() as conn:
        txid = conn.execute(text("SELECT pg_snapshot_xmax(pg_current_snapshot())")).scalar_one()
    change = Restructure(int(txid) + 10, 0, Op.TRUNCATE_EMAILS)
    assert applier.apply(change) == (4, 8)
    before = redis_client.get(keys.value(Kind.AGGREGATES, None))
    assert applier.apply(change) == (4, 0)
    assert redis_client.get(keys.value(Kind.AGGREGATES, None)) == before
    assert json.loads(before or b"{}")["data"]["total_emails"] == 0
    redis_client.delete(keys.value(Kind.AGGREGATES, 1), keys.state(Kind.AGGREGATES, 1))
    result = recompute_every_scope(wal_engine, store, cdc_settings.max_breakdown)
    assert result.written == 0, "a snapshot from before the barrier's transaction was written"
    assert redis_client.get(keys.value(Kind.AGGREGATES, 1)) is None


def test_killed_while_changes_apply_in_place_and_restarted_exact(
    cdc_settings: Settings, wal_engine: Engine, redis_client: redis.Redis
) -> None:
    """`cdc run` killed -9 as soon as a TRUNCATE's in-place pass over 2,000 scopes shows in
    Redis (renames and email changes around it), then started again: every value exact."""
    seed(wal_engine, accounts=2000, per_account=2)
    warm(cdc_settings)
    keys = KeySchema(cdc_settings.key_prefix)
    with cdc_process(cdc_settings) as first:
        sql(
            wal_engine,
            "UPDATE categories SET name = 'Zeta' WHERE id = 1",
            "UPDATE emails SET is_unread = NOT is_unread WHERE account_id < 100",
            "TRUNCATE emails",
            INSERT_UNCATEGORISED.replace(":tag", "'a-'"),
            "UPDATE categories SET name = 'Alpha' WHERE id = 3",
        )

        def started() -> bool:
            raw = redis_client.get(keys.state(Kind.AGGREGATES, 1)) or b""
            return b'"k":' in raw

        wait_until(started, "the TRUNCATE applied in place to a first scope", poll=0.001)
        kill(first)
    sql(wal_engine, INSERT_UNCATEGORISED.replace(":tag", "'b-'"))
    with cdc_process(cdc_settings):
        sql(wal_engine, "UPDATE categories SET name = 'Omega' WHERE id = 2")
        wait_until(
            lambda: exact(redis_client, cdc_settings, wal_engine, [*SCOPES, 4, 999, 2000]),
            "exact values, emptied accounts too",
            timeout=120,
        )
