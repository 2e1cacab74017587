"""Metrics: counts move by exactly what reads and recomputes did, across processes and outages."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from datetime import timedelta

import pytest
import redis
from sqlalchemy import Engine

from dashcache.config import Settings
from dashcache.dispatch import WARM_SCOPE, TaskSender
from dashcache.errors import DashboardUnavailable, InvalidArgument
from dashcache.events import EmailCreated, EmailRow, EmailUpdated, EventPublisher
from dashcache.events.ingest import ingest
from dashcache.keys import KeySchema, Kind
from dashcache.metrics import Metrics
from dashcache.observe.totals import Totals, read_totals
from dashcache.reader import DashboardReader
from dashcache.redis_server import RedisServer
from tests.helpers import NOW, Row, add_categories, add_emails, captured_events, wait_until
from tests.processes import worker_process

CLOSED_DB = "postgresql+psycopg2://postgres@127.0.0.1:1/none"


@pytest.fixture
def data(pg: Engine) -> None:
    add_categories(pg, ["work", "news"])
    add_emails(pg, [Row(1, 1, True, False, NOW), Row(2, 2, False, True, NOW)])


def totals_of(settings: Settings, redis_client: redis.Redis) -> Totals:
    return read_totals(redis_client, KeySchema(settings.key_prefix))


@pytest.mark.usefixtures("data")
def test_reads_count_exactly(
    settings: Settings, reader: DashboardReader, redis_client: redis.Redis
) -> None:
    """A scripted sequence of hits, misses, fallbacks and a failed read gives exactly its counts."""
    reader.get_aggregates(account_id=1)  # miss, fallback (stores both kinds of scope a1)
    reader.get_aggregates(account_id=1)  # hit
    reader.get_category_breakdown(limit=2, account_id=1)  # hit
    reader.get_category_breakdown(limit=2, account_id=2)  # miss, fallback
    broken = DashboardReader.from_settings(replace(settings, database_url=CLOSED_DB))
    with pytest.raises(DashboardUnavailable):
        broken.get_category_breakdown(limit=2, account_id=3)  # miss, failed fallback
    broken.close()
    assert broken.metrics is reader.metrics  # one recorder per process and deployment
    assert reader.metrics.flush()
    totals = totals_of(settings, redis_client)
    assert totals.reads == {
        ("aggregates", "miss"): 1,
        ("aggregates", "fallback"): 1,
        ("aggregates", "hit"): 1,
        ("breakdown", "hit"): 1,
        ("breakdown", "miss"): 2,
        ("breakdown", "fallback"): 1,
        ("breakdown", "error"): 1,
    }
    assert totals.recomputes == {("fallback", "written"): 2, ("fallback", "error"): 1}
    assert totals.durations["fallback"].count == 3
    assert totals.hit_ratio == pytest.approx(2 / 5)


@pytest.mark.usefixtures("data")
def test_fallback_logs_and_hit_does_not(reader: DashboardReader) -> None:
    """A fallback logs one reader.fallback line with its fields; a hit logs nothing."""
    with captured_events() as logs:
        reader.get_aggregates(account_id=2)
        reader.get_aggregates(account_id=2)
    assert [line["event"] for line in logs] == ["reader.fallback"]
    line = logs[0]
    assert line["kind"] == "aggregates"
    assert line["scope"] == "a2"
    assert line["outcome"] == "written"
    assert line["fenced"] == 0
    assert {"duration_ms", "generation"} <= line.keys()


def test_events_received_coalesced_and_dead_lettered(
    settings: Settings, redis_client: redis.Redis
) -> None:
    """Published events count as received, those causing no run of their own as coalesced."""
    row = EmailRow(1, True, False, NOW)
    # The first publish's pending markers outlive the test, so the later ones find them.
    publisher = EventPublisher(replace(settings, event_max_wait_ms=120_000))
    publisher.publish(EmailCreated(5, 1, row))  # new runs for the accounts and for all
    assert publisher.flush(10)
    publisher.publish_many([EmailCreated(5, 2, row), EmailCreated(6, 3, row)])  # a6 joins a5's
    publisher.publish(EmailUpdated(5, 1, row, row))  # changes no counted field: no run
    assert publisher.flush(10)
    assert ingest([{"type": "email.archived"}], publisher) == 0
    assert publisher.metrics.flush()
    publisher.close()
    assert totals_of(settings, redis_client).events == {
        "received": 4,
        "coalesced": 3,
        "dead_lettered": 1,
    }


def test_recompute_histogram_and_fenced(settings: Settings, redis_client: redis.Redis) -> None:
    """Durations land in their buckets with their sum; fenced writes add up per trigger."""
    keys = KeySchema(settings.key_prefix)
    metrics = Metrics(redis.Redis.from_url(settings.redis_url), keys, flush_seconds=60)
    metrics.record_recompute("schedule", "written", 0.003)
    metrics.record_recompute("schedule", "fenced", 0.2, fenced=3)
    metrics.record_recompute("event", "fenced", 500.0, fenced=1)
    metrics.record_event("received")
    metrics.record_event("received")
    metrics.record_event("dead_lettered")
    metrics.close()
    totals = read_totals(redis_client, keys)
    assert totals.durations["schedule"].buckets == {"0.005": 1, "0.25": 1}
    assert totals.durations["schedule"].sum_seconds == pytest.approx(0.203)
    assert totals.durations["event"].buckets == {"inf": 1}
    assert totals.fenced_writes == {"schedule": 3, "event": 1}
    assert totals.events == {"received": 2, "dead_lettered": 1}


def test_bad_label_and_metrics_off(settings: Settings, redis_client: redis.Redis) -> None:
    """An unknown label is a typed error; with a flush period of 0 nothing is recorded."""
    keys = KeySchema(settings.key_prefix)
    client = redis.Redis.from_url(settings.redis_url)
    with pytest.raises(InvalidArgument, match="read outcome"):
        Metrics(client, keys, flush_seconds=60).record_read(Kind.AGGREGATES, "served")  # type: ignore[arg-type]
    off = Metrics(client, keys, flush_seconds=0)
    off.record_read(Kind.AGGREGATES, "hit")
    off.record_scheduled_run(NOW)
    off.close()
    assert redis_client.exists(keys.metrics) == 0


def test_background_thread_flushes(settings: Settings, redis_client: redis.Redis) -> None:
    """Counts reach Redis within a flush period without anyone calling flush."""
    keys = KeySchema(settings.key_prefix)
    metrics = Metrics(redis.Redis.from_url(settings.redis_url), keys, flush_seconds=0.05)
    metrics.record_read(Kind.BREAKDOWN, "hit")
    wait_until(lambda: redis_client.hget(keys.metrics, "reads:breakdown:hit"), "a background flush")
    metrics.close()
    assert redis_client.hget(keys.metrics, "reads:breakdown:hit") == b"1"


def test_failed_flush_keeps_counts_until_redis_is_back(key_prefix: str) -> None:
    """While Redis is down, flushing fails quietly and keeps counts; they arrive once it is back."""
    keys = KeySchema(key_prefix)
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url, socket_timeout=0.5, socket_connect_timeout=0.5)
        metrics = Metrics(client, keys, flush_seconds=60)
        for _ in range(3):
            metrics.record_read(Kind.AGGREGATES, "hit")
        metrics.record_scheduled_run(NOW - timedelta(seconds=5))
        server.stop()
        with captured_events() as logs:
            assert not metrics.flush()
            metrics.record_read(Kind.AGGREGATES, "hit")
            metrics.record_scheduled_run(NOW)
            assert not metrics.flush()
            server.start()
            assert metrics.flush()
        assert [line["event"] for line in logs] == [
            "metrics.flush_failed",
            "metrics.flush_recovered",
        ]
        totals = read_totals(client, keys)
        metrics.close()
    assert totals.reads == {("aggregates", "hit"): 4}
    assert totals.last_scheduled_run == NOW


def test_forked_child_does_not_resend_parent_counts(
    settings: Settings, redis_client: redis.Redis
) -> None:
    """A forked child starts with nothing pending, so counts are never sent twice."""
    keys = KeySchema(settings.key_prefix)
    metrics = Metrics(redis.Redis.from_url(settings.redis_url), keys, flush_seconds=60)
    metrics.record_read(Kind.AGGREGATES, "hit")
    pid = os.fork()
    if pid == 0:
        metrics.record_read(Kind.AGGREGATES, "miss")
        os._exit(0 if metrics.flush() else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    metrics.close()
    assert read_totals(redis_client, keys).reads == {
        ("aggregates", "hit"): 1,
        ("aggregates", "miss"): 1,
    }


def test_worker_counts_scheduled_recomputes(
    settings: Settings, pg: Engine, redis_client: redis.Redis
) -> None:
    """A real worker counts its start-up warm_all, a warm_scope and an event's two runs."""
    add_categories(pg, ["work"])
    settings = replace(settings, metrics_flush_seconds=0.1)
    with worker_process(settings) as worker:
        worker.wait_for("recompute.finished")
        sender = TaskSender(settings)
        sender.send(WARM_SCOPE, [7], settings.schedule_queue)
        sender.close()
        worker.lines_with("recompute.finished", 2)
        publisher = EventPublisher(settings)
        publisher.publish(EmailCreated(7, 1, EmailRow(1, True, False, NOW)))  # runs a7 and all
        publisher.close()
        worker.lines_with("recompute.finished", 4)
        seen = [totals_of(settings, redis_client)]

        def four_counted() -> bool:
            seen[0] = totals_of(settings, redis_client)
            return sum(d.count for d in seen[0].durations.values()) >= 4

        wait_until(four_counted, "four recomputes counted", seen=lambda: seen[0])
        totals = seen[0]
    assert totals.recomputes == {("schedule", "written"): 2, ("event", "written"): 2}
    assert totals.last_scheduled_run is not None
    assert abs(time.time() - totals.last_scheduled_run.timestamp()) < 60
