"""Scenario 3: cold-key stampede. Many readers ask for the same cold value at the same moment.

The all-accounts scope is made cold (cached values deleted), then readers released by one
barrier read it. Dashboard queries are counted by PostgreSQL (`dashcache.bench.pgstats`) between
two quiet moments. dashcache runs without worker and beat here (the reader library alone), so
no schedule fills the key behind the readers' backs; matview's schedule is idle for the same
reason (a view has no cold keys: its cost is one small query per reader).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from dashcache.bench.harness import STRATEGIES, Run
from dashcache.bench.pgstats import read_counters
from dashcache.bench.strategies import Strategy
from dashcache.bench.timing import summary_ms
from dashcache.keys import Kind


def run_stampede(run: Run) -> dict[str, Any]:
    """Dashboard queries and reader latency per strategy for one burst of cold readers."""
    readers = run.profile.stampede_readers
    results: dict[str, Any] = {"readers": readers, "scope": "all accounts", "strategies": {}}
    for name in STRATEGIES:
        run.progress(f"scenario 3: {readers} cold readers on {name}")
        results["strategies"][name] = _one_strategy(run, run.strategy(name, background=False))
    return results


def _one_strategy(run: Run, strategy: Strategy) -> dict[str, Any]:
    readers = run.profile.stampede_readers
    try:
        strategy.start()
        strategy.read(Kind.AGGREGATES, None)  # connections and view exist; then go cold
        strategy.make_cold(None)
        strategy.disconnect()
        run.database.wait_until_quiet()
        before = read_counters(run.database.engine)
        barrier = threading.Barrier(readers)
        latencies: list[float] = []
        errors: list[str] = []

        def read() -> None:
            barrier.wait()
            started = time.perf_counter()
            try:
                strategy.read(Kind.AGGREGATES, None)
            except Exception as error:  # counted and reported, never fatal
                errors.append(f"{type(error).__name__}: {error}")
                return
            latencies.append(time.perf_counter() - started)

        threads = [threading.Thread(target=read, daemon=True) for _ in range(readers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        strategy.stop()
    run.database.wait_until_quiet()
    used = read_counters(run.database.engine) - before
    return {
        "dashboard_queries": used.dashboard_queries,
        "emails_scans": used.emails_scans,
        "emails_rows_read": used.emails_rows_read,
        "reads": summary_ms(latencies),
        "read_errors": len(errors),
    }
