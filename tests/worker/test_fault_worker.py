"""Worker faults: a pool process killed mid-recompute, and the database going away for a while."""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import replace
from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from dashcache.config import Settings
from dashcache.dispatch import WARM_ALL, TaskSender
from dashcache.errors import DashboardUnavailable
from dashcache.keys import KeySchema, Kind
from dashcache.reader import DashboardReader
from tests.helpers import NOW, Row, add_categories, add_emails, wait_until
from tests.processes import beat_process, worker_process
from tests.servers import TcpProxy, pool_children
from tests.worker.test_worker import wait_for_value


def blocked_on_lock(pg: Engine) -> bool:
    """True when some other backend of this database waits for a lock on a query of emails."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' AND query ILIKE '%emails%'"
    )
    with pg.connect() as conn:
        return bool(conn.execute(query).scalar_one())


def test_pool_process_killed_mid_recompute_heals_on_next_scheduled_run(
    settings: Settings, pg: Engine, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """SIGKILL of the process running warm_all loses that run; the next scheduled one heals."""
    fast = replace(settings, refresh_seconds=1, ttl_seconds=60)
    add_categories(pg, ["work", "news"])
    add_emails(pg, [Row(1, 1, True, False, NOW)])
    key = KeySchema(fast.key_prefix).value(Kind.BREAKDOWN, None)
    with worker_process(fast) as worker, beat_process(fast, tmp_path / "beat"):
        wait_for_value(redis_client, key, [["work", 1], ["news", 0]])
        with pg.connect() as conn:
            conn.execute(text("LOCK TABLE emails IN ACCESS EXCLUSIVE MODE"))
            wait_until(lambda: blocked_on_lock(pg), "a recompute blocked on the table lock")
            (child,) = pool_children(worker.popen.pid)
            os.kill(child, signal.SIGKILL)
            conn.rollback()
        worker.wait_for("signal 9 (SIGKILL)")
        add_emails(pg, [Row(2, 2, True, False, NOW), Row(3, 2, False, True, NOW)])
        wait_for_value(redis_client, key, [["news", 2], ["work", 1]])
        assert worker.popen.poll() is None
    wait_until(lambda: not blocked_on_lock(pg), "no backend left waiting on a lock")
    leftover = [k for k in redis_client.scan_iter(f"{fast.key_prefix}*lock*") if b":beat:" not in k]
    assert leftover == []


def test_database_outage_retries_with_backoff_serves_last_value_and_converges(
    settings: Settings, pg: Engine, redis_client: redis.Redis
) -> None:
    """With the database cut warm_all retries (logged), readers get the last value and a miss
    raises DashboardUnavailable within the deadline; then everything converges."""
    url = make_url(settings.database_url)
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    through_proxy = url.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
    cut_off = replace(settings, database_url=through_proxy)
    add_categories(pg, ["work"])
    add_emails(pg, [Row(1, 1, True, False, NOW)])
    key = KeySchema(settings.key_prefix).value(Kind.BREAKDOWN, None)
    reader = DashboardReader.from_settings(cut_off)
    sender = TaskSender(cut_off)
    try:
        with worker_process(cut_off) as worker:
            before = wait_for_value(redis_client, key, [["work", 1]])
            proxy.cut()
            served = reader.get_category_breakdown(limit=5)
            started = time.monotonic()
            with pytest.raises(DashboardUnavailable, match="database failed"):
                reader.get_aggregates(account_id=2)
            miss_seconds = time.monotonic() - started
            add_emails(pg, [Row(1, 1, True, False, NOW), Row(2, None, True, False, NOW)])
            sender.send(WARM_ALL, [], cut_off.schedule_queue)
            failed = worker.lines_with("recompute.failed", 2, timeout=30)
            retries = worker.lines_with("Retry in", 2, timeout=30)
            assert json.loads(redis_client.get(key) or b"{}") == before
            proxy.restore()
            # Jittered countdowns can spend every retry before the restore, as they may in
            # production, where the schedule's next warm_all heals: send it as beat would.
            sender.send(WARM_ALL, [], cut_off.schedule_queue)
            after = wait_for_value(redis_client, key, [["work", 2]], timeout=40)
            wait_until(lambda: answers(reader, account_id=2), "a miss answered again", 30)
            cold = reader.get_aggregates(account_id=2)
    finally:
        proxy.cut()
        sender.close()
        reader.close()
    assert (served.source, served.data) == ("cache", {"work": 1})
    causes = [(json.loads(line)["cause"], json.loads(line)["error"]) for line in failed]
    assert all(cause == "database" for cause, _ in causes), f"recompute.failed lines: {causes}"
    assert all("Error" in json.loads(line)["event"] for line in retries), retries
    assert after["generation"] > before["generation"]
    assert miss_seconds < cut_off.wait_seconds
    assert (cold.source, cold.data["total_emails"]) == ("cache", 1)


def answers(reader: DashboardReader, account_id: int) -> bool:
    """True when a read of the scope returns a value rather than DashboardUnavailable."""
    try:
        reader.get_aggregates(account_id=account_id)
    except DashboardUnavailable:
        return False
    return True
