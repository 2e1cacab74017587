"""`dashcache cdc run` as a real process: killed and restarted, a standby, the slot dropped."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from sqlalchemy import Engine, text

from dashcache.config import Settings
from dashcache.keys import KeySchema
from tests.cdc.walhelpers import seed, sql, wait_exact, warm
from tests.helpers import wait_until
from tests.processes import Process

DASHCACHE = str(Path(sys.executable).parent / "dashcache")


@contextmanager
def cdc_process(settings: Settings, ready: bool = True) -> Iterator[Process]:
    """`dashcache cdc run` with JSON logs; waits for `cdc.ready` unless told not to."""
    env = {**os.environ, **settings.to_env(), "DASHCACHE_LOG_FORMAT": "json"}
    process = Process([DASHCACHE, "cdc", "run"], env)
    try:
        if ready:
            process.wait_for('"cdc.ready"')
        yield process
    finally:
        process.stop()


def kill(process: Process) -> None:
    """SIGKILL: no clean-up of any kind."""
    process.popen.send_signal(signal.SIGKILL)
    process.popen.wait(timeout=30)


STREAM = (
    "UPDATE emails SET is_unread = NOT is_unread WHERE account_id = :account",
    "UPDATE emails SET category_id = :category WHERE id % 7 = :n % 7",
    "INSERT INTO emails (message_id, account_id, category_id, is_unread, is_auto_labeled,"
    " created_at, updated_at) SELECT 'w' || :n || '-' || g, :account, 2, true, false,"
    " now() - interval '3 days', now() FROM generate_series(1, 20) g",
    "DELETE FROM emails WHERE id IN (SELECT id FROM emails WHERE account_id = :account"
    " ORDER BY id LIMIT 5)",
)


def write_stream(
    engine: Engine, transactions: int, stop: threading.Event, done: threading.Event
) -> None:
    """Multi-row transactions, one after the other: flips, moves, inserts, deletes; until `stop`
    is set, `done` once all `transactions` are written."""
    for n in range(transactions):
        if stop.is_set():
            return
        values = {"n": n, "account": n % 3 + 1, "category": n % 4 + 1}
        with engine.begin() as conn:
            for statement in STREAM:
                conn.execute(text(statement), values)
    done.set()


def test_killed_mid_stream_and_restarted_nothing_lost_nothing_twice(
    cdc_settings: Settings, wal_engine: Engine, redis_client: redis.Redis
) -> None:
    """SIGKILL in the middle of a stream of multi-row transactions, then a new consumer: the
    values are exact (unconfirmed transactions re-delivered, each change counted once)."""
    seed(wal_engine, per_account=150)
    warm(cdc_settings)
    keys = KeySchema(cdc_settings.key_prefix)
    stop, done = threading.Event(), threading.Event()
    # The writer goes on through the kill and the restart (however slow the consumer), and
    # stops once the new consumer is ready.
    writer = threading.Thread(target=write_stream, args=(wal_engine, 3000, stop, done))
    try:
        with cdc_process(cdc_settings) as first:
            writer.start()
            wait_until(
                lambda: redis_client.hlen(keys.deltas(None)) > 100,
                "some changes applied",
                seen=lambda: redis_client.hlen(keys.deltas(None)),
            )
            kill(first)
        assert not done.is_set(), "the stream ended before the kill: nothing was in flight"
        with cdc_process(cdc_settings):
            stop.set()
            writer.join(timeout=120)
            assert not writer.is_alive(), "the writer did not stop"
            wait_exact(redis_client, cdc_settings, wal_engine, timeout=120)
    finally:
        stop.set()
        if writer.is_alive():
            writer.join(timeout=120)


def test_a_standby_takes_over_when_the_active_consumer_dies(
    cdc_settings: Settings, wal_engine: Engine, redis_client: redis.Redis
) -> None:
    """A second `cdc run` waits while the first consumes, and takes over after it is killed."""
    seed(wal_engine)
    warm(cdc_settings)
    with cdc_process(cdc_settings) as active, cdc_process(cdc_settings, ready=False) as standby:
        standby.wait_for('"cdc.standby"')
        sql(wal_engine, "UPDATE emails SET is_unread = NOT is_unread WHERE account_id = 1")
        wait_exact(redis_client, cdc_settings, wal_engine)
        assert not [line for line in standby.lines if '"cdc.active"' in line]
        kill(active)
        standby.wait_for('"cdc.ready"')
        sql(wal_engine, "DELETE FROM emails WHERE account_id = 2 AND id % 2 = 0")
        wait_exact(redis_client, cdc_settings, wal_engine)


def test_the_slot_dropped_under_the_consumer_is_made_again_and_values_exact(
    cdc_settings: Settings, wal_engine: Engine, redis_client: redis.Redis
) -> None:
    """The walsender killed and the slot dropped: `cdc.slot_lost`, a new slot, a full pass, and
    the changes committed while no slot existed are counted."""
    seed(wal_engine)
    warm(cdc_settings)
    slot = cdc_settings.cdc_slot
    with cdc_process(cdc_settings) as consumer:
        with wal_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:

            def drop() -> bool:
                """Cut the walsender, then drop the slot if the consumer has not reconnected."""
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots"
                        " WHERE slot_name = :s AND active_pid IS NOT NULL"
                    ),
                    {"s": slot},
                )
                return bool(
                    conn.execute(
                        text(
                            "SELECT count(pg_drop_replication_slot(slot_name))"
                            " FROM pg_replication_slots WHERE slot_name = :s AND NOT active"
                        ),
                        {"s": slot},
                    ).scalar_one()
                )

            wait_until(drop, "the slot dropped between two connections of its consumer", poll=0.02)
            conn.execute(text("UPDATE emails SET category_id = 3 WHERE account_id = 3"))
        consumer.wait_for('"cdc.slot_lost"')
        consumer.lines_with('"cdc.ready"', 2)
        sql(wal_engine, "UPDATE emails SET is_unread = NOT is_unread WHERE account_id = 2")
        wait_exact(redis_client, cdc_settings, wal_engine)


def test_a_slot_invalidated_past_max_slot_wal_keep_size_is_made_again(
    cdc_settings: Settings, wal_engine: Engine, redis_client: redis.Redis
) -> None:
    """A slot PostgreSQL invalidated while no consumer ran (`wal_status = 'lost'`): the next
    `cdc run` logs `cdc.slot_lost`, makes a new slot, and the full pass counts what the lost
    one would have streamed."""
    seed(wal_engine)
    warm(cdc_settings)
    admin = wal_engine.execution_options(isolation_level="AUTOCOMMIT")
    with cdc_process(cdc_settings):
        pass
    with admin.connect() as conn:
        conn.execute(text("ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'"))
        conn.execute(text("SELECT pg_reload_conf()"))
        wait_until(
            lambda: conn.execute(text("SHOW max_slot_wal_keep_size")).scalar_one() == "1MB",
            "the configuration reloaded",
        )
        try:
            conn.execute(text("UPDATE emails SET category_id = 2 WHERE account_id = 1"))
            for _ in range(4):
                conn.execute(text("CREATE TEMP TABLE IF NOT EXISTS filler (x text)"))
                conn.execute(
                    text(
                        "INSERT INTO filler SELECT repeat('x', 1000) FROM generate_series(1, 2000)"
                    )
                )
                conn.execute(text("SELECT pg_switch_wal()"))

            def status() -> str:
                found: str = conn.execute(
                    text("SELECT wal_status FROM pg_replication_slots WHERE slot_name = :s"),
                    {"s": cdc_settings.cdc_slot},
                ).scalar_one()
                return found

            def invalidated() -> bool:
                conn.execute(text("CHECKPOINT"))  # a checkpoint invalidates the slot
                return status() == "lost"

            wait_until(invalidated, "the slot's wal_status to be 'lost'", seen=status, poll=0.5)
        finally:
            conn.execute(text("DROP TABLE IF EXISTS filler"))
            conn.execute(text("ALTER SYSTEM RESET max_slot_wal_keep_size"))
            conn.execute(text("SELECT pg_reload_conf()"))
    with cdc_process(cdc_settings) as consumer:
        consumer.wait_for('"cdc.slot_lost"')
        wait_exact(redis_client, cdc_settings, wal_engine)
