"""Scenario 1: read latency of each strategy, against a raw Redis GET + json.loads.

Every strategy runs at once and reads are interleaved round by round (the order rotating), with
the raw GET of the same payload (dashcache's stored envelope) in every round, so drift in the
machine's load hits all of them alike. ttl-invalidate is measured warm (its hits).
"""

from __future__ import annotations

import json
import time
from typing import Any

from dashcache.bench.harness import STRATEGIES, Run
from dashcache.bench.strategies import Strategy
from dashcache.bench.timing import percentile, ratio, summary_ms
from dashcache.keys import KeySchema, Kind, Scope

RAW = "raw-redis-get"


def scopes_of(run: Run) -> dict[str, Scope]:
    """The scopes read: all accounts, the largest account, an account of median size."""
    return {
        "all accounts": None,
        "largest account": run.database.largest_accounts(1)[0],
        "median account": run.database.median_account(),
    }


def run_latency(run: Run) -> dict[str, Any]:
    """p50/p99 per scope and strategy, the ratio to the raw GET, and the speed-up over live."""
    strategies = [run.strategy(name) for name in STRATEGIES]
    keys = KeySchema(run.ctx.prefix)
    try:
        for strategy in strategies:
            run.progress(f"scenario 1: starting {strategy.name}")
            strategy.start()
        results: dict[str, Any] = {}
        for label, scope in scopes_of(run).items():
            run.progress(f"scenario 1: {run.profile.latency_rounds} rounds on {label}")
            for strategy in strategies:  # warm ttl-invalidate; first reads pay connection set-up
                for kind in Kind:
                    strategy.read(kind, scope)
            samples = _interleaved(run, strategies, keys, scope)
            results[label] = _summarise(samples, scope)
        return {"rounds": run.profile.latency_rounds, "scopes": results}
    finally:
        for strategy in strategies:
            strategy.stop()


def _interleaved(
    run: Run, strategies: list[Strategy], keys: KeySchema, scope: Scope
) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in [s.name for s in strategies] + [RAW]}
    client = run.ctx.redis
    for round_ in range(run.profile.latency_rounds):
        kind = Kind.AGGREGATES if round_ % 2 == 0 else Kind.BREAKDOWN
        shift = round_ % len(strategies)
        for strategy in strategies[shift:] + strategies[:shift]:
            started = time.perf_counter()
            strategy.read(kind, scope)
            samples[strategy.name].append(time.perf_counter() - started)
        started = time.perf_counter()
        json.loads(client.get(keys.value(kind, scope)))  # type: ignore[arg-type]
        samples[RAW].append(time.perf_counter() - started)
    return samples


def _summarise(samples: dict[str, list[float]], scope: Scope) -> dict[str, Any]:
    raw_p50 = percentile(samples[RAW], 50)
    live_p50 = percentile(samples["live"], 50)
    out: dict[str, Any] = {"account_id": scope}
    for name, values in samples.items():
        p50 = percentile(values, 50)
        out[name] = summary_ms(values) | {
            "x_raw_get": round(ratio(p50, raw_p50), 2),
            "speedup_vs_live": round(ratio(live_p50, p50), 1),
        }
    return out
