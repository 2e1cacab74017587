"""The status page's data: one dict read from Redis on request, never in the background.

`read_status` reads the report of `dashcache stats` (the WAL source and the last pass included)
plus what only the page shows (beat's next due time, dead letters, queue depths, the last hour's
per-minute series) in a handful of round trips; everything else here is pure.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import redis

from dashcache.config import Settings
from dashcache.keys import KeySchema
from dashcache.logging import redact
from dashcache.metrics import KIND_LABELS, RECOMPUTE_OUTCOMES
from dashcache.observe.freshness import Freshness, read_freshness
from dashcache.observe.report import read_report

SERIES = ("cdc_lag_ms", "events_received", "events_applied", "events_recomputed")
"""The per-minute series the page reads (CONTRACTS: `KeySchema.series`)."""
CHART_MINUTES = 60
DEAD_LETTERS_SHOWN = 10
PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")
"""kombu's Redis transport keeps a queue as one list per priority step (`name`, then
`name` + separator + step)."""


def read_status(
    settings: Settings, client: redis.Redis, broker: redis.Redis | None, now: datetime
) -> dict[str, Any]:
    """Everything the page shows; raises `redis.RedisError` when the cache Redis fails."""
    keys = KeySchema(settings.key_prefix)
    freshness = read_freshness(client, keys, now)
    body = read_report(client, keys, freshness)
    minutes = chart_minutes(now)
    pipe = client.pipeline(transaction=False)
    pipe.zrangebyscore(keys.beat_schedule, 0, "+inf", start=0, num=1, withscores=True)
    pipe.lrange(keys.dead_letters, 0, DEAD_LETTERS_SHOWN - 1)
    pipe.llen(keys.dead_letters)
    pipe.mget([keys.series(name, minute) for name in SERIES for minute in minutes])
    next_due, letters, letters_total, raw_series = pipe.execute()
    series = {
        name: [_number(raw) for raw in raw_series[i * len(minutes) : (i + 1) * len(minutes)]]
        for i, name in enumerate(SERIES)
    }
    return {
        "redis": "ok",
        "now": now.isoformat(),
        "settings": settings_shown(settings),
        "stats": body,
        "values": values_by_kind(freshness, settings.soft_age),
        "schedule": schedule(body, next_due, now),
        "events": events(body, series),
        "cdc": body["cdc"],
        "drift": body["drift"],
        "drift_by_trigger": body.get("drift_by_trigger"),
        "dead_letters": {"total": letters_total, "latest": [dead_entry(raw) for raw in letters]},
        "queues": queue_depths(settings, broker),
        "series": {"minutes": minutes, **series},
    }


def unreachable(settings: Settings, error: Exception, now: datetime) -> dict[str, Any]:
    """What the page shows when the cache Redis did not answer."""
    lines = str(error).strip().splitlines()
    detail = redact(lines[0]) if lines else type(error).__name__
    return {
        "redis": "unreachable",
        "error": f"{type(error).__name__}: {detail}",
        "now": now.isoformat(),
        "settings": settings_shown(settings),
    }


def settings_shown(settings: Settings) -> dict[str, Any]:
    """The deployment the page describes, URL passwords masked."""
    return {
        "redis_url": redact(settings.redis_url),
        "broker_url": redact(settings.broker_url),
        "key_prefix": settings.key_prefix,
        "soft_age_seconds": settings.soft_age,
        "refresh_seconds": settings.refresh_seconds,
    }


def values_by_kind(freshness: Freshness, soft_age: int) -> dict[str, dict[str, Any]]:
    """Per kind: how many values, their age p50/p99/oldest (seconds), how many past `soft_age`."""
    panel = {}
    for kind in KIND_LABELS.values():
        ages = sorted(age.age_seconds for age in freshness.ages if age.kind == kind)
        panel[kind] = {
            "count": len(ages),
            "age_p50_seconds": _rounded(percentile(ages, 50)),
            "age_p99_seconds": _rounded(percentile(ages, 99)),
            "oldest_seconds": _rounded(ages[-1] if ages else None),
            "past_soft_age": sum(1 for age in ages if age > soft_age),
        }
    return panel


def percentile(ordered: list[float], rank: float) -> float | None:
    """Nearest-rank percentile of an ascending list; None when empty."""
    if not ordered:
        return None
    return ordered[max(math.ceil(rank / 100 * len(ordered)), 1) - 1]


def schedule(
    body: dict[str, Any], next_due: list[tuple[bytes, float]], now: datetime
) -> dict[str, Any]:
    """The last pass (the report's `last_pass` when it has one) and beat's next due time."""
    due = datetime.fromtimestamp(next_due[0][1], UTC) if next_due else None
    return {
        "last_pass": body.get("last_pass"),
        "last_scheduled_run": body["last_scheduled_run"],
        "next_due": None if due is None else due.isoformat(),
        "next_due_in_seconds": None if due is None else round((due - now).total_seconds(), 1),
    }


def events(body: dict[str, Any], series: dict[str, list[float | None]]) -> dict[str, Any]:
    """Totals since the start, and per-minute counts: the last full minute and the last hour."""
    per_minute = {}
    for name in ("events_received", "events_applied", "events_recomputed"):
        points = [point or 0 for point in series[name]]
        per_minute[name.removeprefix("events_")] = {
            "last_minute": int(points[-2]),
            "this_minute": int(points[-1]),
            "last_hour": int(sum(points)),
        }
    lags = [point for point in series["cdc_lag_ms"] if point is not None]
    event_runs = body["recomputes"]["event"]
    return {
        "totals": body["events"],
        "recomputed_total": sum(event_runs[outcome] for outcome in RECOMPUTE_OUTCOMES),
        "per_minute": per_minute,
        "lag_ms_max_last_hour": max(lags) if lags else None,
    }


def dead_entry(raw: bytes) -> dict[str, Any]:
    """One dead letter as stored; an unreadable entry is shown as its raw text."""
    try:
        entry = json.loads(raw)
    except ValueError:
        entry = None
    if not isinstance(entry, dict):
        return {"reason": "unreadable entry", "payload": raw.decode(errors="replace")}
    return {name: entry.get(name) for name in ("rejected_at", "reason", "field", "payload")}


def queue_depths(settings: Settings, broker: redis.Redis | None) -> dict[str, Any]:
    """Messages waiting in the schedule and events queues; None ("n/a") unless the broker is
    a Redis, whose queues are lists (one per priority step)."""
    depths: dict[str, Any] = {"broker": redact(settings.broker_url), "error": None}
    names = {"schedule": settings.schedule_queue, "events": settings.events_queue}
    if broker is None:
        return depths | dict.fromkeys(names)
    try:
        pipe = broker.pipeline(transaction=False)
        for name in names.values():
            for suffix in PRIORITY_SUFFIXES:
                pipe.llen(name + suffix)
        lengths = pipe.execute()
    except redis.RedisError as error:
        return (
            depths | dict.fromkeys(names) | {"error": f"broker unreachable: {type(error).__name__}"}
        )
    step = len(PRIORITY_SUFFIXES)
    for i, queue in enumerate(names):
        depths[queue] = sum(lengths[i * step : (i + 1) * step])
    return depths


def chart_minutes(now: datetime) -> list[int]:
    """Starts (epoch seconds) of the last `CHART_MINUTES` minutes, the current one last."""
    current = int(now.timestamp()) // 60 * 60
    return [current - 60 * back for back in range(CHART_MINUTES - 1, -1, -1)]


def _number(raw: bytes | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)
