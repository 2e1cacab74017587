"""One bench run: seed a database of its own, run the scenarios, write the report files."""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import redis

from dashcache.bench.database import bench_database
from dashcache.bench.harness import Run, log_progress
from dashcache.bench.machine import describe, load_average
from dashcache.bench.plot import write_png
from dashcache.bench.profiles import TEN_MILLION, Profile
from dashcache.bench.report import markdown, write_json
from dashcache.bench.scenario_latency import run_latency
from dashcache.bench.scenario_mixed import run_mixed
from dashcache.bench.scenario_recompute import run_recompute
from dashcache.bench.scenario_stampede import run_stampede
from dashcache.bench.strategies import BenchContext
from dashcache.config import Settings
from dashcache.metrics import metrics_for
from dashcache.store import make_redis

REDIS_TIMEOUT_SECONDS = 5.0
OUTPUTS = ("results.json", "results.md", "results.png")


def run_bench(
    settings: Settings,
    profile: Profile,
    out: Path,
    command: str,
    ten_million: bool = False,
    progress: Any = log_progress,
) -> dict[str, Any]:
    """Run every scenario against every strategy; write results.{json,md,png} into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    prefix = f"{settings.key_prefix}-bench-{uuid.uuid4().hex[:8]}"
    client = make_redis(settings.redis_url, REDIS_TIMEOUT_SECONDS)
    started = time.monotonic()
    results: dict[str, Any] = {"profile": asdict(profile), "command": command}
    try:
        with bench_database(settings.database_url, profile.accounts, profile.categories) as db:
            bench_settings = replace(settings, database_url=db.url, key_prefix=prefix)
            run = Run(db, BenchContext(bench_settings, client, out / "logs"), profile, progress)
            results["machine"] = describe(db.engine, client)
            results["recompute"] = []
            for size in profile.sizes:
                progress(f"seeding the bench database to {size:,} emails")
                db.grow_to(size)
                results["recompute"].append(run_recompute(run))
            results["rows"] = db.rows
            loads = results["load_average_at_scenario_start"] = {}
            for name, scenario in (
                ("latency", run_latency),
                ("mixed", run_mixed),
                ("stampede", run_stampede),
            ):
                loads[name] = load_average()
                results[name] = scenario(run)
            results["rows_at_end"] = db.count_emails()
            if ten_million:
                progress(f"seeding the bench database to {TEN_MILLION:,} emails")
                db.grow_to(TEN_MILLION)
                results["recompute"].append(run_recompute(run))
    finally:
        _sweep(client, replace(settings, key_prefix=prefix))
        client.close()
    results["load_average_at_end"] = load_average()
    results["duration_seconds"] = round(time.monotonic() - started, 1)
    write_json(results, out / "results.json")
    (out / "results.md").write_text(markdown(results))
    write_png(results, out / "results.png")
    progress(
        f"done in {results['duration_seconds']} s: " + ", ".join(str(out / n) for n in OUTPUTS)
    )
    return results


def _sweep(client: redis.Redis, settings: Settings) -> None:
    """Flush this process's metrics for the run's prefix, then delete every key and queue of it."""
    metrics_for(settings).flush()
    patterns = (f"{settings.key_prefix}*", f"_kombu.*.{settings.key_prefix}*")
    keys = [key for pattern in patterns for key in client.scan_iter(pattern, count=1000)]
    if keys:
        client.delete(*keys)
