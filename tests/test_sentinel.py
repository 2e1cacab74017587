"""Through Sentinel for real: one primary, one replica, three Sentinels on loopback ports.

Every part takes `redis+sentinel://` for REDIS_URL and CELERY_BROKER_URL (readers, worker,
beat, broker, CLI); after the primary is killed -9, each reaches the node Sentinel promotes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import redis
from kombu.exceptions import KombuError
from sqlalchemy import Engine

from dashcache.bench.launcher import celery_env
from dashcache.config import Settings
from dashcache.dispatch import WARM_SCOPE, TaskSender
from dashcache.keys import KeySchema, Kind
from dashcache.reader import DashboardReader
from dashcache.sentinel import primary_of
from dashcache.store import make_redis
from tests.async_readers import with_reader
from tests.helpers import NOW, Row, add_categories, add_emails, wait_until
from tests.observe.test_health import record_run, write_value
from tests.processes import beat_process, worker_process
from tests.sentinels import SentinelTopology

DEADLINE = 60.0


@pytest.fixture
def through_sentinel(settings: Settings, topology: SentinelTopology) -> Settings:
    """The test's settings with the cache and the broker behind Sentinel."""
    return replace(settings, redis_url=topology.url(0), broker_url=topology.url(1))


def data_of(client: redis.Redis, key: str) -> object:
    raw = client.get(key)
    return None if raw is None else json.loads(raw)["data"]


def kill_primary(topology: SentinelTopology) -> tuple[str, int]:
    """SIGKILL the primary; wait until Sentinel names the replica; its address."""
    old = topology.master_address()
    assert topology.primary.process is not None
    os.kill(topology.primary.process.pid, signal.SIGKILL)
    topology.primary.process.wait()
    wait_until(
        lambda: topology.master_address() != old, "Sentinel to promote the replica", DEADLINE
    )
    return topology.master_address()


def test_worker_beat_and_readers_run_through_sentinel_and_survive_a_failover(
    through_sentinel: Settings, pg: Engine, topology: SentinelTopology, tmp_path: Path
) -> None:
    """Worker and beat warm the values through Sentinel, the sync reader serves them; after the
    primary is killed -9 the worker keeps consuming (a task sent through Sentinel is run and
    written on the promoted node) and the reader reads there."""
    settings = replace(through_sentinel, refresh_seconds=2)
    add_categories(pg, ["work"])
    add_emails(pg, [Row(5, 1, True, False, NOW)])
    keys = KeySchema(settings.key_prefix)
    cache = make_redis(settings.redis_url, 5.0)
    reader = DashboardReader.from_settings(settings)
    sender = TaskSender(settings)
    try:
        with worker_process(settings) as worker, beat_process(settings, tmp_path / "beat"):
            key = keys.value(Kind.BREAKDOWN, 5)
            wait_until(lambda: data_of(cache, key) == [["work", 1]], f"{key} warmed", DEADLINE)
            wait_until(lambda: cache.zcard(keys.beat_schedule), "beat's schedule", DEADLINE)
            served = reader.get_category_breakdown(limit=5, account_id=5)
            assert (served.source, served.data) == ("cache", {"work": 1})

            promoted = kill_primary(topology)
            assert promoted[1] == topology.replica.port
            add_emails(pg, [Row(5, 1, False, False, NOW)])

            def refreshed() -> bool:
                try:
                    sender.send(WARM_SCOPE, [5], settings.schedule_queue)
                except KombuError:
                    return False  # no Sentinel names a primary yet: the promotion is under way
                return wait_quietly(lambda: data_of(cache, key) == [["work", 2]], 5)

            wait_until(refreshed, "a warm_scope sent after the failover to be run", DEADLINE)
            wait_until(
                lambda: reader.get_category_breakdown(limit=5, account_id=5).data == {"work": 2},
                "the reader to read the promoted node",
                DEADLINE,
            )
            assert worker.popen.poll() is None
            assert primary_of(cache).startswith(f"127.0.0.1:{topology.replica.port} ")
    finally:
        sender.close()
        reader.close()
        cache.close()


def wait_quietly(check: object, timeout: float) -> bool:
    """`check()` became true within `timeout` s (no failure when it did not)."""
    assert callable(check)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return True
        except redis.RedisError:
            pass
        time.sleep(0.1)
    return False


def test_async_reader_reads_through_sentinel(
    through_sentinel: Settings, pg: Engine, topology: SentinelTopology
) -> None:
    """The asyncio reader computes a miss and writes it through Sentinel, then hits it."""
    add_categories(pg, ["work"])
    add_emails(pg, [Row(6, 1, True, False, NOW)])

    async def body(reader: object) -> tuple[str, str]:
        first = await reader.get_aggregates(account_id=6)  # type: ignore[attr-defined]
        again = await reader.get_aggregates(account_id=6)  # type: ignore[attr-defined]
        return first.source, again.source

    assert with_reader(through_sentinel, body) == ("fallback", "cache")
    primary = redis.Redis(port=topology.primary.port)
    key = KeySchema(through_sentinel.key_prefix).value(Kind.AGGREGATES, 6)
    assert primary.exists(key)
    primary.close()


def test_health_names_the_primary_sentinel_chose(
    through_sentinel: Settings, pg: Engine, topology: SentinelTopology
) -> None:
    """`dashcache health` says where writes go, and says it again after a failover."""
    write_value(through_sentinel, age_seconds=5)
    record_run(through_sentinel, age_seconds=5)
    dashcache = str(Path(sys.executable).with_name("dashcache"))

    def health() -> str:
        env = celery_env(through_sentinel)
        done = subprocess.run([dashcache, "health"], env=env, capture_output=True, text=True)
        return done.stdout

    assert f"writes go to 127.0.0.1:{topology.primary.port} (primary of dash" in health()
    kill_primary(topology)
    promoted = f"writes go to 127.0.0.1:{topology.replica.port} (primary of dash"
    wait_until(lambda: promoted in health(), f"health to say {promoted!r}", DEADLINE)
