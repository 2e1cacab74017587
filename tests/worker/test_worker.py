"""The worker: a real Celery worker process consumes warm tasks; beat's schedule is right."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import redis
from sqlalchemy import Engine

from dashcache.config import Settings
from dashcache.dispatch import WARM_ALL, WARM_SHARD, TaskSender
from dashcache.keys import KeySchema, Kind
from dashcache.worker.schedule import beat_schedule
from tests.helpers import NOW, WAIT_SECONDS, Row, add_categories, add_emails, wait_until
from tests.processes import beat_process, worker_process


def wait_for_key(client: redis.Redis, key: str, timeout: float = WAIT_SECONDS) -> dict:
    """Poll until the key exists; return its envelope."""
    raw: bytes = wait_until(lambda: client.get(key), f"{key} to be written", timeout)
    envelope: dict = json.loads(raw)
    return envelope


def test_beat_schedule_holds_the_recompute_at_the_period() -> None:
    """The one beat entry runs warm_all every refresh period, expiring after one period."""
    entry = beat_schedule(Settings(refresh_seconds=17, ttl_seconds=600))["warm-every-scope"]
    assert entry["task"] == WARM_ALL
    assert entry["schedule"] == timedelta(seconds=17)
    assert entry["options"]["expires"] == 17


def wait_for_value(
    client: redis.Redis, key: str, expected: object, timeout: float = WAIT_SECONDS
) -> dict:
    """Poll until the key's data equals `expected`; return the envelope."""
    seen: dict = {}

    def check() -> dict | None:
        raw = client.get(key)
        seen.clear()
        seen.update(json.loads(raw) if raw else {})
        return dict(seen) if seen.get("data") == expected else None

    envelope: dict = wait_until(check, f"{key} to hold {expected}", timeout, seen=lambda: seen)
    return envelope


def test_worker_warms_at_start(settings: Settings, pg: Engine, redis_client: redis.Redis) -> None:
    """A starting worker warms every scope once, without waiting a period for beat."""
    add_categories(pg, ["work"])
    add_emails(pg, [Row(4, 1, True, False, NOW)])
    keys = KeySchema(settings.key_prefix)
    with worker_process(settings):
        envelope = wait_for_key(redis_client, keys.value(Kind.BREAKDOWN, 4))
    assert envelope["data"] == [["work", 1]]


def test_real_worker_consumes_warm_task(
    settings: Settings, pg: Engine, redis_client: redis.Redis
) -> None:
    """A warm_all task sent over the broker is consumed, its shards run (the last one logs the
    pass), and every scope's keys hold the truth, all of the pass's generation."""
    add_categories(pg, ["work", "news"])
    keys = KeySchema(settings.key_prefix)
    with worker_process(settings) as worker:
        worker.wait_for("recompute.finished")
        rows = [
            Row(1, 1, True, False, NOW),
            Row(2, 2, False, True, NOW),
            Row(2, 2, True, True, NOW),
        ]
        add_emails(pg, rows)
        sender = TaskSender(settings)
        sender.send(WARM_ALL, [], settings.schedule_queue)
        sender.close()
        account_two = wait_for_value(
            redis_client, keys.value(Kind.BREAKDOWN, 2), [["news", 2], ["work", 0]]
        )
        everything = wait_for_key(redis_client, keys.value(Kind.AGGREGATES, None))
        finished = [json.loads(line) for line in worker.lines_with("recompute.finished", 2)]
    assert everything["data"]["total_emails"] == 3
    assert everything["data"]["unread_count"] == 2
    assert account_two["data"] == [["news", 2], ["work", 0]]
    assert all(
        line["task_name"] == WARM_SHARD and line["outcome"] == "written" for line in finished
    )
    assert all({"task_id", "scope", "duration_ms"} <= line.keys() for line in finished)


def test_beat_keeps_keys_warm_every_period(
    settings: Settings, pg: Engine, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """With worker and beat running, the value is recomputed once per period, newer each time:
    the passes' own log lines carry increasing generations and the stored value is one of them."""
    fast = replace(settings, refresh_seconds=1, ttl_seconds=60)
    add_categories(pg, ["work"])
    key = KeySchema(fast.key_prefix).value(Kind.AGGREGATES, None)
    with worker_process(fast) as worker, beat_process(fast, tmp_path / "beat"):
        worker.lines_with("recompute.finished", 6)
        stored = wait_for_key(redis_client, key)["generation"]
    finished = [json.loads(line) for line in worker.lines if "recompute.finished" in line]
    generations = [line["generation"] for line in finished]
    assert len(generations) >= 6
    assert all(earlier < later for earlier, later in itertools.pairwise(generations)), generations
    assert all(line["outcome"] == "written" for line in finished)
    assert stored in generations
    assert stored >= generations[5]
    sent = [line for line in worker.lines if "dashcache.warm_all" in line and "received" in line]
    assert len(sent) >= 5
