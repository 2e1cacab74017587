"""App-published events and the WAL together; bad rows; a database that is not ready."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import redis
from click.testing import CliRunner
from sqlalchemy import Engine, text

from dashcache.cli.main import main
from dashcache.cli.support import EXIT_USAGE
from dashcache.config import Settings
from dashcache.events import EmailRow, EmailUpdated, EventPublisher
from dashcache.keys import KeySchema
from dashcache.models import Email
from dashcache.snapshots import current_txid
from tests.cdc.walhelpers import consuming, exact, scopes, seed, sql, wait_exact, warm
from tests.eventing import tracked_sessions
from tests.helpers import wait_until


def run_cli(settings: Settings, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env=settings.to_env())
    return result.exit_code, result.stdout, result.stderr


def test_app_events_and_the_wal_count_each_change_once(
    cdc_settings: Settings, wal_engine: Engine, redis_client: redis.Redis
) -> None:
    """Transactions published by the app before the WAL delivers them, and after it did (the
    same email changed twice in one of them), are counted once."""
    seed(wal_engine)
    warm(cdc_settings)
    with consuming(cdc_settings):
        pass  # the slot exists from here on: what commits next is streamed
    publisher = EventPublisher(cdc_settings)
    factory = tracked_sessions(wal_engine, publisher, deltas=True)
    with factory() as session, session.begin():
        for email_id in (1, 2, 3):
            email = session.get(Email, email_id)
            assert email is not None
            email.is_unread = not email.is_unread
            session.flush()
            email.category_id = 4
        session.delete(session.get(Email, 8))
    with consuming(cdc_settings):
        wait_exact(redis_client, cdc_settings, wal_engine)
        with wal_engine.begin() as conn:
            txid = current_txid(conn)
            before = conn.execute(
                text(
                    "SELECT category_id, is_unread, is_auto_labeled, created_at FROM emails"
                    " WHERE id = 11"
                )
            ).one()
            conn.execute(text("UPDATE emails SET is_unread = NOT is_unread WHERE id = 11"))
            conn.execute(text("UPDATE emails SET category_id = 1 WHERE id = 11"))
            account = conn.execute(text("SELECT account_id FROM emails WHERE id = 11")).scalar()
        wait_exact(redis_client, cdc_settings, wal_engine)
        old = EmailRow(before[0], before[1], before[2], before[3])
        new = EmailRow(1, not before[1], before[2], before[3])
        applied = publisher.publish_many([EmailUpdated(account, 11, old, new, txid=txid)])
        assert applied == []
        assert exact(redis_client, cdc_settings, wal_engine, scopes(wal_engine))
    publisher.close()


def test_a_poison_row_is_dead_lettered_while_good_rows_flow(
    cdc_settings: Settings, wal_engine: Engine, redis_client: redis.Redis
) -> None:
    """A row whose account is out of range is dead-lettered with its position; the good rows of
    its transaction and of the next ones are applied."""
    seed(wal_engine)
    warm(cdc_settings)
    insert = (
        "INSERT INTO emails (message_id, account_id, category_id, is_unread, is_auto_labeled,"
        " created_at, updated_at) VALUES ('<{0}@x>', {1}, 1, true, false, now(), now())"
    )
    keys = KeySchema(cdc_settings.key_prefix)
    with consuming(cdc_settings) as logs:
        sql(wal_engine, insert.format("a", 1), insert.format("bad", -5), insert.format("b", 2))
        sql(wal_engine, "UPDATE emails SET is_unread = false WHERE account_id = 3")
        accounts = [s for s in scopes(wal_engine) if s is not None and s > 0]
        wait_until(
            lambda: exact(redis_client, cdc_settings, wal_engine, accounts), "good rows applied"
        )
        rejected = [e for e in logs if e["event"] == "cdc.row_rejected"]
    assert len(rejected) == 1
    assert "account" in str(rejected[0]["reason"])
    entry = json.loads(redis_client.lindex(keys.dead_letters, 0) or b"{}")
    assert json.loads(entry["payload"])["lsn"] == rejected[0]["lsn"]


def test_a_table_without_replica_identity_full_is_refused_by_name(
    cdc_settings: Settings, wal_engine: Engine
) -> None:
    """`cdc check` and `cdc run` exit 2 naming the exact ALTER TABLE that fixes it."""
    fix = "ALTER TABLE emails REPLICA IDENTITY FULL;"
    assert run_cli(cdc_settings, "cdc", "check")[0] == 0
    sql(wal_engine, "ALTER TABLE emails REPLICA IDENTITY DEFAULT")
    try:
        code, out, _ = run_cli(cdc_settings, "cdc", "check")
        assert code == EXIT_USAGE
        assert fix in out
        code, _, err = run_cli(cdc_settings, "cdc", "run")
        assert code == EXIT_USAGE
        assert fix in err
    finally:
        sql(wal_engine, "ALTER TABLE emails REPLICA IDENTITY FULL")


def test_drop_removes_the_slot_the_publication_and_the_status(
    cdc_settings: Settings, wal_engine: Engine, redis_client: redis.Redis
) -> None:
    """`cdc drop` leaves no slot holding WAL back, no publication and no status behind."""
    seed(wal_engine)
    with consuming(cdc_settings):
        pass
    keys = KeySchema(cdc_settings.key_prefix)
    assert redis_client.exists(keys.cdc_status)
    code, out, _ = run_cli(cdc_settings, "cdc", "drop")
    assert code == 0, out
    with wal_engine.connect() as conn:
        slots = conn.execute(
            text("SELECT count(*) FROM pg_replication_slots WHERE slot_name = :s"),
            {"s": cdc_settings.cdc_slot},
        ).scalar_one()
        publications = conn.execute(
            text("SELECT count(*) FROM pg_publication WHERE pubname = :p"),
            {"p": cdc_settings.cdc_publication},
        ).scalar_one()
    assert (slots, publications) == (0, 0)
    assert not redis_client.exists(keys.cdc_status)


def test_a_server_without_logical_decoding_is_refused_with_the_fix(settings: Settings) -> None:
    """On the shared server (wal_level=replica) `cdc check` exits 2 naming wal_level's fix."""
    code, out, _ = run_cli(settings, "cdc", "check")
    assert code == EXIT_USAGE
    assert "wal_level is replica" in out
    assert "ALTER SYSTEM SET wal_level = logical" in out


def test_sqlite_is_refused_by_every_cdc_command(settings: Settings, tmp_path: Path) -> None:
    """SQLite has no WAL to stream: run, check and drop exit 2 saying so."""
    lite = replace(settings, database_url=f"sqlite:///{tmp_path}/lite.db")
    for command in ("run", "check", "drop"):
        code, _, err = run_cli(lite, "cdc", command)
        assert code == EXIT_USAGE, command
        assert "SQLite has no WAL" in err
