"""Scenario 2: mixed load. Concurrent readers, a steady mutation stream, then a burst.

One strategy at a time: readers start (warm-up), mutations come at a steady rate (one per
transaction), then the burst as fast as one writer commits it (a bulk action: `burst_batch` per
transaction), then a quiet tail; readers read all along. Database load is
read from PostgreSQL's statistics (`dashcache.bench.pgstats`) between two moments when nothing is
connected to the bench database, so it includes the strategy's own set-up (a view's creation,
the worker's start-up warm) and its settling. Afterwards every checked value is polled until it
equals the database's truth, up to the profile's settle time; the truth checks themselves are
taken out of the counts (the queries exactly; their scans of `emails` are left in).
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any

from sqlalchemy import Engine, select

from dashcache import clock
from dashcache.bench.database import TRUTH_APPLICATION
from dashcache.bench.harness import STRATEGIES, Run, matches_truth
from dashcache.bench.mutations import Mutation, apply, plan, unread_pool
from dashcache.bench.pgstats import ActivitySampler, read_counters
from dashcache.bench.staleness import ProgressClock
from dashcache.bench.strategies import Strategy
from dashcache.bench.timing import percentile, summary_ms
from dashcache.db import make_engine
from dashcache.keys import Kind, Scope
from dashcache.models import Category

HOT_ACCOUNTS = 10
CHECKED_ACCOUNTS = 3


def run_mixed(run: Run) -> dict[str, Any]:
    """The mixed load against each strategy in turn."""
    profile = run.profile
    per_strategy = round(profile.steady_rate * profile.steady_seconds) + profile.burst
    pool = unread_pool(run.database.engine, per_strategy * len(STRATEGIES))
    hot = run.database.largest_accounts(HOT_ACCOUNTS)
    with run.database.engine.connect() as conn:  # before any counting starts
        categories = list(conn.scalars(select(Category.id)))
    results: dict[str, Any] = {
        "readers": profile.readers,
        "steady_mutations_per_second": profile.steady_rate,
        "burst": profile.burst,
        "strategies": {},
    }
    share = len(pool) // len(STRATEGIES)
    for n, name in enumerate(STRATEGIES):
        run.progress(f"scenario 2: {name} under mixed load")
        mine = pool[n * share : (n + 1) * share]
        mutations = list(plan(random.Random(n), per_strategy, mine, categories, clock.now()))
        results["strategies"][name] = _one_strategy(run, name, mutations, hot)
    return results


def _one_strategy(run: Run, name: str, mutations: list[Mutation], hot: list[int]) -> dict[str, Any]:
    database = run.database
    progress_clock = ProgressClock.start(run.truth(None))
    database.wait_until_quiet()
    before = read_counters(database.engine)
    with ActivitySampler(database.url, database.name, TRUTH_APPLICATION) as sampler:
        strategy = run.strategy(name)
        strategy.start()
        try:
            load = _load(run, strategy, mutations, hot, progress_clock)
            settled = _settle(run, strategy, hot[:CHECKED_ACCOUNTS])
            extras = _extras(strategy)
        finally:
            strategy.stop()
    database.wait_until_quiet()
    used = read_counters(database.engine) - before
    return (
        load
        | settled
        | extras
        | {
            "dashboard_queries": used.dashboard_queries,
            "emails_scans": used.emails_scans,
            "emails_rows_read": used.emails_rows_read,
            "dashboard_db_seconds": round(sampler.dashboard_seconds, 3),
            "all_statements_db_seconds": round(used.active_ms / 1000, 3),
            "activity_samples": sampler.samples,
        }
    )


def _load(
    run: Run,
    strategy: Strategy,
    mutations: list[Mutation],
    hot: list[int],
    progress_clock: ProgressClock,
) -> dict[str, Any]:
    profile = run.profile
    stop = threading.Event()
    latencies: list[float] = []
    staleness: list[float] = []
    errors: list[str] = []
    readers = [
        threading.Thread(
            target=_reader,
            args=(strategy, random.Random(n), hot, stop, (latencies, staleness, errors)),
            kwargs={"think": profile.reader_think_seconds, "progress_clock": progress_clock},
            daemon=True,
        )
        for n in range(profile.readers)
    ]
    for reader in readers:
        reader.start()
    engine = make_engine(run.database.url)
    steady = round(profile.steady_rate * profile.steady_seconds)
    try:
        time.sleep(profile.warmup_seconds)
        started = time.monotonic()
        for n, mutation in enumerate(mutations[:steady]):
            time.sleep(max(0.0, started + n / profile.steady_rate - time.monotonic()))
            _commit(engine, strategy, [mutation], progress_clock)
        burst_started = time.monotonic()
        for first in range(steady, len(mutations), profile.burst_batch):
            _commit(
                engine, strategy, mutations[first : first + profile.burst_batch], progress_clock
            )
        burst_seconds = time.monotonic() - burst_started
        time.sleep(profile.quiet_seconds)
    finally:
        stop.set()
        for reader in readers:
            reader.join()
        engine.dispose()
    wall = profile.warmup_seconds + (time.monotonic() - started)
    stale = [s for s in staleness if s > 0]
    return {
        "reads": summary_ms(latencies),
        "read_errors": len(errors),
        "first_read_error": errors[0] if errors else None,
        "reads_per_second": round(len(latencies) / wall, 1),
        "load_seconds": round(wall, 1),
        "mutations": len(mutations),
        "burst_mutations_per_second": round(
            (len(mutations) - steady) / max(burst_seconds, 1e-9), 1
        ),
        "staleness": {
            "samples": len(staleness),
            "stale_share": round(len(stale) / len(staleness), 3) if staleness else None,
            "p50_ms": round(percentile(staleness, 50) * 1000, 1),
            "p99_ms": round(percentile(staleness, 99) * 1000, 1),
            "max_ms": round(max(staleness, default=0.0) * 1000, 1),
        },
    }


def _commit(
    engine: Engine, strategy: Strategy, batch: list[Mutation], progress_clock: ProgressClock
) -> None:
    """Commit one batch, note when its progress-moving mutations became true, tell the strategy."""
    done = apply(engine, batch)
    committed = time.monotonic()
    for mutation in done:
        if mutation.moves_progress:
            progress_clock.committed(committed)
    strategy.on_commit(done)


def _reader(
    strategy: Strategy,
    rng: random.Random,
    hot: list[int],
    stop: threading.Event,
    out: tuple[list[float], list[float], list[str]],
    think: float,
    progress_clock: ProgressClock,
) -> None:
    """Half the reads are of the all-accounts scope (sampled for staleness), half of a hot one."""
    latencies, staleness, errors = out
    while not stop.is_set():
        scope: Scope = None if rng.random() < 0.5 else rng.choice(hot)
        kind = Kind.AGGREGATES if rng.random() < 0.5 else Kind.BREAKDOWN
        started = time.monotonic()
        try:
            got = strategy.read(kind, scope)
        except Exception as error:  # a failed read is counted and reported, never fatal
            errors.append(f"{type(error).__name__}: {error}")
            stop.wait(think)
            continue
        latencies.append(time.monotonic() - started)
        if scope is None and kind is Kind.AGGREGATES:
            staleness.append(progress_clock.behind(got.data, started))
        stop.wait(think)


def _settle(run: Run, strategy: Strategy, accounts: list[int]) -> dict[str, Any]:
    """Poll each checked value until it equals the truth; how long that took, if it did."""
    started = time.monotonic()
    deadline = started + run.profile.settle_seconds
    pending = [(kind, scope) for scope in [None, *accounts] for kind in Kind]
    truths = {scope: run.truth(scope) for scope in [None, *accounts]}
    while pending and time.monotonic() < deadline:
        pending = [
            (kind, scope)
            for kind, scope in pending
            if not matches_truth(kind, strategy.read(kind, scope), truths[scope])
        ]
        if pending:
            time.sleep(0.05)
    return {
        "final_matches_truth": not pending,
        "settle_seconds": round(time.monotonic() - started, 2) if not pending else None,
        "values_checked": 2 * len(truths),
        "truth_checks": len(truths),
    }


def _extras(strategy: Strategy) -> dict[str, Any]:
    """What only some strategies have: stale stores, refreshes, worker CPU, memory per scope."""
    extras: dict[str, Any] = {}
    for attribute in ("racing_sets", "refreshes"):
        if hasattr(strategy, attribute):
            extras[attribute] = getattr(strategy, attribute)
    memory = getattr(strategy, "memory_per_scope", None)
    if memory is not None:
        extras["redis_bytes_per_scope"] = round(memory())
    processes = getattr(strategy, "processes", None)
    if processes is not None:
        extras["worker_cpu_seconds"] = round(processes.cpu_seconds(), 2)
    return extras
