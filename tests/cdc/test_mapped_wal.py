"""The WAL source on a mapped schema whose auto-labeled flag is `category_id IS NOT NULL`: raw SQL
that gives, takes away and changes categories is counted exactly by deltas."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import redis
from sqlalchemy import Engine, text

from dashcache import clock
from dashcache.config import Settings
from dashcache.keys import Kind, Scope
from tests.cdc.walhelpers import consuming, sql, warm
from tests.eventing import envelope
from tests.helpers import wait_until
from tests.mapped_schemas import BY_CATEGORY, DAY, Email, app_schema, random_emails
from tests.schema.test_schema_events import settled


def test_the_wal_counts_a_not_null_flag_on_the_category_column(
    cdc_settings: Settings, wal_engine: Engine, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """Uncategorised emails given a category, categorised ones losing it, an insert without one
    and a delete, by raw SQL in one transaction: every scope equals the brute-force count, and
    no value was recomputed (the WAL applied deltas)."""
    with app_schema(wal_engine, BY_CATEGORY, tmp_path, ["Work", "News"]) as app:
        app.add(random_emails(30, 1, 3, 2))
        sql(wal_engine, "ALTER TABLE inbox.mails REPLICA IDENTITY FULL")
        mapped = replace(cdc_settings, schema_file=app.mapping_file)
        warm(mapped)
        wait_until(lambda: settled(redis_client, mapped, app), "the warm values")
        scopes = app.scopes()

        def generations() -> dict[tuple[Kind, Scope], int]:
            return {
                (kind, scope): envelope(redis_client, mapped, kind, scope)["generation"]
                for kind in Kind
                for scope in scopes
            }

        with consuming(mapped):
            pass  # the slot and its first pass: what commits next is streamed
        warmed = generations()
        gains = sorted(e.id for e in app.rows.values() if e.category is None)[:3]
        losses = sorted(e.id for e in app.rows.values() if e.category is not None)[:3]
        assert gains
        assert losses
        new = Email(100, 2, None, True, False, clock.now() - DAY)
        with wal_engine.begin() as conn:
            move = "UPDATE inbox.mails SET category_id = :c WHERE id = ANY(:ids)"
            conn.execute(text(move), {"c": 2, "ids": gains})
            conn.execute(text(move), {"c": None, "ids": losses})
            conn.execute(
                text(
                    "INSERT INTO inbox.mails (id, user_id, category_id, created_at, is_unread)"
                    " VALUES (:id, 2, NULL, :at, true)"
                ),
                {"id": new.id, "at": new.created_at},
            )
            conn.execute(text("DELETE FROM inbox.mails WHERE id = 30"))
        for email_id in gains:
            app.rows[email_id].category = 2
        for email_id in losses:
            app.rows[email_id].category = None
        app.rows[new.id] = new
        del app.rows[30]
        with consuming(mapped):
            wait_until(lambda: settled(redis_client, mapped, app), "the WAL's deltas", 60)
        assert generations() == warmed
