"""Scenario 4: the cost of recomputing every number, against refreshing a view of them.

At each table size: dashcache's `recompute_every_scope` (one grouped pass, fold, fenced writes
of every scope's aggregates and breakdown to Redis) and `REFRESH MATERIALIZED VIEW` of the same
numbers, plain and CONCURRENTLY, repeated with the order rotating; medians and ratios.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from statistics import median
from typing import Any

from dashcache.bench.harness import Run
from dashcache.bench.matview import autocommit, create_view, drop_view, refresh
from dashcache.bench.timing import ratio
from dashcache.keys import KeySchema
from dashcache.recompute import recompute_every_scope
from dashcache.store import RedisStore

RECOMPUTE = "recompute_every_scope"
REFRESH = "refresh_matview"
REFRESH_CONCURRENTLY = "refresh_matview_concurrently"


def run_recompute(run: Run) -> dict[str, Any]:
    """Medians and ratios at the database's current size."""
    database = run.database
    engine = database.engine
    keys = KeySchema(f"{run.ctx.prefix}-recompute")
    store = RedisStore(run.ctx.redis, keys, run.ctx.settings.ttl_seconds)
    scopes = 0

    def recompute() -> None:
        nonlocal scopes
        scopes = recompute_every_scope(engine, store, run.ctx.max_breakdown).scopes

    with autocommit(engine) as conn:
        drop_view(conn)
        started = time.perf_counter()
        create_view(conn)
        create_seconds = time.perf_counter() - started
        steps: dict[str, Callable[[], None]] = {
            RECOMPUTE: recompute,
            REFRESH: lambda: refresh(conn, concurrently=False),
            REFRESH_CONCURRENTLY: lambda: refresh(conn, concurrently=True),
        }
        timings: dict[str, list[float]] = {name: [] for name in steps}
        names = list(steps)
        try:
            for repeat in range(run.profile.recompute_repeats):
                run.progress(f"scenario 4: {database.rows:,} emails, repeat {repeat + 1}")
                shift = repeat % len(names)
                for name in names[shift:] + names[:shift]:
                    started = time.perf_counter()
                    steps[name]()
                    timings[name].append(time.perf_counter() - started)
        finally:
            drop_view(conn)
            stale = list(run.ctx.redis.scan_iter(f"{keys.prefix}:*", count=1000))
            if stale:
                run.ctx.redis.delete(*stale)
    medians = {name: median(values) for name, values in timings.items()}
    return {
        "emails": database.rows,
        "scopes": scopes,
        "repeats": run.profile.recompute_repeats,
        "median_ms": {name: round(value * 1000, 1) for name, value in medians.items()},
        "create_matview_ms": round(create_seconds * 1000, 1),
        "recompute_x_refresh": round(ratio(medians[RECOMPUTE], medians[REFRESH]), 3),
        "recompute_x_refresh_concurrently": round(
            ratio(medians[RECOMPUTE], medians[REFRESH_CONCURRENTLY]), 3
        ),
    }
