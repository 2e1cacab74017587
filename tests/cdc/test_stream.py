"""The WAL source end to end: committed changes become exact values by deltas, no pass."""

from __future__ import annotations

import redis
from sqlalchemy import Engine, text

from dashcache.config import Settings
from tests.cdc.walhelpers import consuming, generations, scopes, seed, sql, wait_exact, warm


def test_single_row_commits_are_exact_without_a_recompute(
    cdc_settings: Settings, wal_engine: Engine, redis_client: redis.Redis
) -> None:
    """Raw single-row INSERT, UPDATE and DELETE commits reach every value by deltas alone."""
    seed(wal_engine)
    generation = warm(cdc_settings)
    with consuming(cdc_settings) as logs:
        sql(wal_engine, "UPDATE emails SET is_unread = NOT is_unread WHERE id = 1")
        sql(wal_engine, "UPDATE emails SET category_id = 3 WHERE id = 2")
        sql(
            wal_engine,
            "UPDATE emails SET is_auto_labeled = true,"
            " created_at = now() - interval '1 day' WHERE id = 5",
        )
        sql(wal_engine, "DELETE FROM emails WHERE id = 7")
        sql(
            wal_engine,
            "INSERT INTO emails (message_id, account_id, category_id, is_unread, is_auto_labeled,"
            " created_at, updated_at)"
            " VALUES ('<n1@x>', 2, 1, true, false, now() - interval '2 days', now())",
        )
        wait_exact(redis_client, cdc_settings, wal_engine)
        pass_events = [e for e in logs if e["event"] in ("cdc.pass", "cdc.recomputed")]
    assert [e["event"] for e in pass_events] == ["cdc.pass"]
    assert generations(redis_client, cdc_settings, scopes(wal_engine)) <= {generation + 1}


def test_bulk_statements_are_exact_in_chunks(
    cdc_settings: Settings, wal_engine: Engine, redis_client: redis.Redis
) -> None:
    """Bulk UPDATE (of counted columns and of others only), INSERT ... SELECT and DELETE, several
    chunks each, and one transaction that changes the same emails twice, are exact by deltas
    alone."""
    seed(wal_engine, per_account=60)
    warm(cdc_settings)
    with consuming(cdc_settings) as logs:
        sql(wal_engine, "UPDATE emails SET updated_at = now(), message_id = message_id || '.'")
        sql(wal_engine, "UPDATE emails SET is_unread = NOT is_unread, category_id = 4")
        sql(
            wal_engine,
            "INSERT INTO emails (message_id, account_id, category_id, is_unread, is_auto_labeled,"
            " created_at, updated_at) SELECT message_id || 'copy', account_id % 2 + 1,"
            " category_id, is_unread, NOT is_auto_labeled, created_at, updated_at FROM emails",
        )
        sql(wal_engine, "DELETE FROM emails WHERE id % 3 = 0")
        sql(
            wal_engine,
            "UPDATE emails SET is_unread = true WHERE id % 2 = 0",
            "UPDATE emails SET category_id = 2, account_id = 3 WHERE id % 4 = 0",
            "UPDATE emails SET is_auto_labeled = NOT is_auto_labeled WHERE id < 100",
        )
        wait_exact(redis_client, cdc_settings, wal_engine)
        assert not [e for e in logs if e["event"] == "cdc.recomputed"]


def test_category_changes_and_truncate_are_applied_in_place_without_a_recount(
    cdc_settings: Settings, wal_engine: Engine, redis_client: redis.Redis
) -> None:
    """A category renamed (moving in name order), created and filled, deleted with its emails
    and deleted under them (`ON DELETE SET NULL`), its id changed, every category truncated
    (CASCADE), then the emails truncated and refilled in one transaction: every value equals a
    fresh count, and no value was recomputed (each change was applied in place)."""
    seed(wal_engine)
    warm(cdc_settings)
    with consuming(cdc_settings) as logs:
        sql(wal_engine, "UPDATE categories SET name = 'Zeta' WHERE id = 1")
        wait_exact(redis_client, cdc_settings, wal_engine)
        sql(wal_engine, "INSERT INTO categories (id, name) VALUES (9, 'Aaa')")
        sql(wal_engine, "UPDATE emails SET category_id = 9 WHERE id < 10")
        wait_exact(redis_client, cdc_settings, wal_engine)
        sql(
            wal_engine,
            "DELETE FROM emails WHERE category_id = 2",
            "DELETE FROM categories WHERE id = 2",
        )
        wait_exact(redis_client, cdc_settings, wal_engine)
        sql(wal_engine, "DELETE FROM categories WHERE id = 3")
        sql(
            wal_engine,
            "UPDATE emails SET category_id = 9 WHERE category_id = 4",
            "UPDATE categories SET id = 7, name = 'Bbb' WHERE id = 4",
            "UPDATE emails SET category_id = 7 WHERE id % 3 = 0",
        )
        wait_exact(redis_client, cdc_settings, wal_engine)
        sql(
            wal_engine,
            "TRUNCATE emails",
            "INSERT INTO emails (message_id, account_id, category_id, is_unread, is_auto_labeled,"
            " created_at, updated_at) VALUES ('<t1@x>', 2, 9, true, false,"
            " now() - interval '2 days', now())",
        )
        wait_exact(redis_client, cdc_settings, wal_engine)
        sql(wal_engine, "TRUNCATE categories CASCADE")
        wait_exact(redis_client, cdc_settings, wal_engine)
        recomputed = [e for e in logs if e["event"] in ("cdc.recomputed", "cdc.pass")]
        restructured = [e["op"] for e in logs if e["event"] == "cdc.restructured"]
    assert [e["event"] for e in recomputed] == ["cdc.pass"]
    assert restructured[:4] == ["rename", "insert", "delete", "delete"]
    assert "truncate_emails" in restructured
    assert "truncate_categories" in restructured


def test_a_transaction_applied_for_longer_than_the_sender_timeout_keeps_its_session(
    cdc_settings: Settings, wal_engine: Engine, redis_client: redis.Redis
) -> None:
    """The walsender's keepalives are answered while a large transaction is applied chunk by
    chunk: with `wal_sender_timeout` below the time the transaction takes (90,000 changes in
    chunks of 50), the session stays up and the values are exact."""
    seed(wal_engine, per_account=2000)
    warm(cdc_settings)
    admin = wal_engine.execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("ALTER SYSTEM SET wal_sender_timeout = '2s'"))
        conn.execute(text("SELECT pg_reload_conf()"))
    try:
        with consuming(cdc_settings) as logs:
            sql(wal_engine, *["UPDATE emails SET is_unread = NOT is_unread"] * 15)
            wait_exact(redis_client, cdc_settings, wal_engine, timeout=120)
            disconnected = [e for e in logs if e["event"] == "cdc.disconnected"]
    finally:
        with admin.connect() as conn:
            conn.execute(text("ALTER SYSTEM RESET wal_sender_timeout"))
            conn.execute(text("SELECT pg_reload_conf()"))
    assert disconnected == []
