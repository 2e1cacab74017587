"""The WAL source end to end: committed changes become exact values by deltas, no pass."""

from __future__ import annotations

import redis
from sqlalchemy import Engine

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
