"""`dashcache metrics serve`: a Prometheus endpoint that reads the totals from Redis per scrape.

Every process flushes its counts to one Redis hash, so one endpoint exposes the totals of all
web and worker processes; freshness gauges are computed from the keys at scrape time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

import redis
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from dashcache import clock
from dashcache.keys import KeySchema
from dashcache.logging import get_logger
from dashcache.metrics import (
    EVENT_OUTCOMES,
    KIND_LABELS,
    PASS_OUTCOMES,
    READ_OUTCOMES,
    RECOMPUTE_OUTCOMES,
    TRIGGERS,
)
from dashcache.observe.cdc import CDC_OPS, CdcStatus, read_cdc
from dashcache.observe.freshness import Freshness, read_freshness
from dashcache.observe.totals import Totals, read_totals

log = get_logger(__name__)


class DashcacheCollector(Collector):
    """Yields dashcache's metrics from Redis at each scrape; `dashcache_redis_up` 0 if it fails."""

    def __init__(
        self, client: redis.Redis, keys: KeySchema, now: Callable[[], datetime] = clock.now
    ) -> None:
        self.client = client
        self.keys = keys
        self.now = now

    def collect(self) -> Iterator[Metric]:
        """The metric families of one scrape."""
        up = GaugeMetricFamily("dashcache_redis_up", "1 when the cache Redis answered this scrape")
        try:
            now = self.now()
            totals = read_totals(self.client, self.keys)
            freshness = read_freshness(self.client, self.keys, now)
            cdc = read_cdc(self.client, self.keys)
        except redis.RedisError as error:
            log.warning("metrics.scrape_failed", error=f"{type(error).__name__}: {error}")
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from _counters(totals)
        yield from _freshness(totals, freshness)
        if cdc is not None:
            yield from _cdc(cdc)


LOSS_SOURCES = ("cdc", "events")
"""The writers that check Redis for lost writes (shared/written.py, the WAL consumer)."""


def _counters(totals: Totals) -> Iterator[Metric]:
    reads = CounterMetricFamily(
        "dashcache_reads", "Dashboard reads by key kind and outcome", labels=["kind", "outcome"]
    )
    for kind in KIND_LABELS.values():
        for outcome in READ_OUTCOMES:
            reads.add_metric([kind, outcome], totals.reads.get((kind, outcome), 0))
    yield reads

    recomputes = CounterMetricFamily(
        "dashcache_recomputes",
        "Recomputes by trigger and outcome",
        labels=["trigger", "outcome"],
    )
    fenced = CounterMetricFamily(
        "dashcache_fenced_writes", "Values the generation fence rejected", labels=["trigger"]
    )
    durations = HistogramMetricFamily(
        "dashcache_recompute_duration_seconds", "Recompute durations", labels=["trigger"]
    )
    for trigger in TRIGGERS:
        for result in RECOMPUTE_OUTCOMES:
            recomputes.add_metric([trigger, result], totals.recomputes.get((trigger, result), 0))
        fenced.add_metric([trigger], totals.fenced_writes.get(trigger, 0))
        if trigger in totals.durations:
            histogram = totals.durations[trigger]
            durations.add_metric(
                [trigger], buckets=histogram.cumulative(), sum_value=histogram.sum_seconds
            )
    yield from (recomputes, fenced, durations)

    events = CounterMetricFamily(
        "dashcache_events", "Mutation events by what became of them", labels=["outcome"]
    )
    for fate in EVENT_OUTCOMES:
        events.add_metric([fate], totals.events.get(fate, 0))
    yield events

    drift = CounterMetricFamily(
        "dashcache_drift",
        "Values a recompute found wrong and repaired, by kind and trigger",
        labels=["kind", "trigger"],
    )
    for trigger in TRIGGERS:
        by_kind = totals.drift_by_trigger.get(trigger, {})
        for kind in KIND_LABELS.values():
            drift.add_metric([kind, trigger], by_kind.get(kind, 0))
    yield drift
    passes = CounterMetricFamily(
        "dashcache_pass_scopes",
        "Scopes the scheduled pass warmed, and dropped as idle (nobody read them in the idle days)",
        labels=["outcome"],
    )
    for what in PASS_OUTCOMES:
        passes.add_metric([what], totals.pass_scopes.get(what, 0))
    yield passes
    lost = CounterMetricFamily(
        "dashcache_redis_writes_lost",
        "Times a writer found that Redis had lost its writes (restarted empty, or a promoted "
        "replica that missed them) and had every scope recomputed, by writer",
        labels=["source"],
    )
    for source in LOSS_SOURCES:
        lost.add_metric([source], totals.writes_lost.get(source, 0))
    yield lost
    yield CounterMetricFamily(
        "dashcache_cdc_wait_short",
        "WAL transactions not confirmed yet: fewer replicas than DASHCACHE_REDIS_MIN_REPLICAS "
        "acknowledged them",
        value=totals.wait_short,
    )


def _freshness(totals: Totals, freshness: Freshness) -> Iterator[Metric]:
    if totals.last_scheduled_run is not None:
        yield GaugeMetricFamily(
            "dashcache_last_scheduled_run_timestamp_seconds",
            "Unix time the last successful scheduled recompute finished",
            value=totals.last_scheduled_run.timestamp(),
        )
    yield GaugeMetricFamily(
        "dashcache_scopes_warmed", "Scopes with warmed values", value=freshness.scopes_warmed
    )
    yield GaugeMetricFamily(
        "dashcache_values_missing",
        "Values of warmed scopes that are absent or unreadable",
        value=freshness.missing,
    )
    ages = GaugeMetricFamily(
        "dashcache_value_age_seconds",
        "Seconds since each warmed value was computed",
        labels=["scope", "kind"],
    )
    for age in freshness.ages:
        ages.add_metric([age.scope, age.kind], age.age_seconds)
    yield ages
    oldest = freshness.oldest
    yield GaugeMetricFamily(
        "dashcache_value_oldest_age_seconds",
        "Seconds since the oldest warmed value was computed",
        value=0.0 if oldest is None else oldest.age_seconds,
    )


def _cdc(status: CdcStatus) -> Iterator[Metric]:
    if status.lag_seconds is not None:
        yield GaugeMetricFamily(
            "dashcache_cdc_lag_seconds",
            "Commit to applied, of the last transaction the WAL consumer applied",
            value=status.lag_seconds,
        )
    if status.retained_bytes is not None:
        yield GaugeMetricFamily(
            "dashcache_cdc_retained_bytes",
            "WAL the replication slot holds back (current WAL position - confirmed position)",
            value=status.retained_bytes,
        )
    changes = CounterMetricFamily(
        "dashcache_cdc_changes", "Replicated changes of the mapped tables, by kind", labels=["op"]
    )
    for op in CDC_OPS:
        changes.add_metric([op], status.changes.get(op, 0))
    yield changes


def serve(client: redis.Redis, keys: KeySchema, port: int, addr: str) -> None:
    """Serve /metrics on addr:port until the process is stopped."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DashcacheCollector(client, keys))
    _server, thread = start_http_server(port, addr=addr, registry=registry)
    log.info("metrics.serving", addr=addr, port=port)
    thread.join()
