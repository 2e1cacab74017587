"""`dashcache metrics serve`: scraped over HTTP, parsed with prometheus_client's own parser."""

from __future__ import annotations

import sys
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from dashcache import clock
from dashcache.bench.launcher import celery_env
from dashcache.config import Settings
from dashcache.keys import KeySchema, Kind
from dashcache.metrics import Metrics
from dashcache.observe.prometheus import DashcacheCollector
from dashcache.redis_server import free_port
from dashcache.store import Envelope, RedisStore, Write, make_redis
from tests.processes import Process


def samples_by_name(text: str) -> dict[str, list[Sample]]:
    samples: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def value(samples: dict[str, list[Sample]], name: str, **labels: str) -> float:
    (match,) = [s for s in samples[name] if labels.items() <= s.labels.items()]
    return match.value


def test_endpoint_exposes_counters_histogram_and_ages(
    settings: Settings, redis_client: redis.Redis
) -> None:
    """The served page has _total counters, a cumulative histogram and per-key age gauges."""
    keys = KeySchema(settings.key_prefix)
    metrics = Metrics(redis.Redis.from_url(settings.redis_url), keys, flush_seconds=60)
    metrics.record_read(Kind.AGGREGATES, "hit")
    metrics.record_read(Kind.AGGREGATES, "hit")
    metrics.record_read(Kind.BREAKDOWN, "miss")
    for seconds in (0.003, 0.2, 7.0):
        metrics.record_recompute("schedule", "written", seconds)
    finished = clock.now()
    metrics.record_scheduled_run(finished)
    metrics.record_writes_lost("events")
    metrics.record_wait_short()
    metrics.record_wait_short()
    metrics.close()
    store = RedisStore(redis_client, keys, settings.ttl_seconds)
    envelope = Envelope({}, clock.now() - timedelta(seconds=30), store.take_ticket())
    store.write([Write(kind, scope, envelope) for kind in Kind for scope in (None, 3)])

    port = free_port()
    dashcache = str(Path(sys.executable).with_name("dashcache"))
    command = [dashcache, "metrics", "serve", "--port", str(port)]
    server = Process([*command, "--addr", "127.0.0.1"], celery_env(settings))
    try:
        server.wait_for("metrics.serving")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60) as response:
            page = response.read().decode()
    finally:
        server.stop()

    samples = samples_by_name(page)
    assert value(samples, "dashcache_redis_up") == 1
    assert value(samples, "dashcache_reads_total", kind="aggregates", outcome="hit") == 2
    assert value(samples, "dashcache_reads_total", kind="breakdown", outcome="miss") == 1
    assert value(samples, "dashcache_reads_total", kind="breakdown", outcome="hit") == 0
    assert value(samples, "dashcache_recomputes_total", trigger="schedule", outcome="written") == 3
    bucket = "dashcache_recompute_duration_seconds_bucket"
    assert value(samples, bucket, trigger="schedule", le="0.005") == 1
    assert value(samples, bucket, trigger="schedule", le="0.25") == 2
    assert value(samples, bucket, trigger="schedule", le="5.0") == 2
    assert value(samples, bucket, trigger="schedule", le="+Inf") == 3
    assert value(samples, "dashcache_recompute_duration_seconds_count", trigger="schedule") == 3
    duration_sum = value(samples, "dashcache_recompute_duration_seconds_sum", trigger="schedule")
    assert duration_sum == pytest.approx(7.203)
    assert value(samples, "dashcache_last_scheduled_run_timestamp_seconds") == (
        finished.timestamp()
    )
    assert value(samples, "dashcache_scopes_warmed") == 2
    assert value(samples, "dashcache_redis_writes_lost_total", source="events") == 1
    assert value(samples, "dashcache_redis_writes_lost_total", source="cdc") == 0
    assert value(samples, "dashcache_cdc_wait_short_total") == 2
    assert len(samples["dashcache_value_age_seconds"]) == 4
    assert value(samples, "dashcache_value_age_seconds", scope="a3", kind="breakdown") >= 30
    assert value(samples, "dashcache_value_oldest_age_seconds") >= 30


def test_unreachable_redis_is_redis_up_zero(key_prefix: str) -> None:
    """When Redis does not answer a scrape, the page says dashcache_redis_up 0, not an error."""
    client = make_redis(f"redis://127.0.0.1:{free_port()}/0", timeout_seconds=0.5)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DashcacheCollector(client, KeySchema(key_prefix)))
    samples = samples_by_name(generate_latest(registry).decode())
    assert list(samples) == ["dashcache_redis_up"]
    assert value(samples, "dashcache_redis_up") == 0
