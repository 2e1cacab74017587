"""Coalescing markers on a real Redis: leading edge, already pending, trailing while running."""

from __future__ import annotations

import redis

from shared.coalesce import Coalescer, Run
from shared.config import Settings
from shared.keys import KeySchema, Kind
from shared.targeting import Target

AGG, BD = Kind.AGGREGATES, Kind.BREAKDOWN


def make(client: redis.Redis, prefix: str, max_wait_ms: int = 2000) -> Coalescer:
    settings = Settings(key_prefix=prefix, event_debounce_ms=250, event_max_wait_ms=max_wait_ms)
    return Coalescer(client, KeySchema(prefix), settings)


def test_idle_key_runs_at_once_then_coalesces(redis_client: redis.Redis, key_prefix: str) -> None:
    """An idle key's first mark asks for an immediate run; marks while pending ask nothing."""
    coalescer = make(redis_client, key_prefix)
    targets = [Target(AGG, "a1"), Target(BD, "a1"), Target(AGG, "all")]
    first = coalescer.mark(targets)
    assert sorted(first, key=lambda run: run.scope) == [
        Run("a1", (AGG, BD), None),
        Run("all", (AGG,), None),
    ]
    assert coalescer.mark(targets) == []
    assert coalescer.mark([Target(BD, "all")]) == [Run("all", (BD,), None)]


def test_mark_during_a_run_asks_for_one_trailing_run(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    """After a claim, the next mark gets the debounce; further marks nothing; release resets."""
    coalescer = make(redis_client, key_prefix)
    target = [Target(AGG, "a1")]
    coalescer.mark(target)
    coalescer.claim(target, "run-1")
    assert coalescer.mark(target) == [Run("a1", (AGG,), 0.25)]
    assert coalescer.mark(target) == []
    coalescer.claim(target, "run-2")
    coalescer.release(target, "run-1")
    assert redis_client.exists(KeySchema(key_prefix).running(AGG, "a1"))
    coalescer.release(target, "run-2")
    assert coalescer.mark(target) == [Run("a1", (AGG,), None)]


def test_a_lost_enqueue_heals_when_the_marker_expires(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    """A pending marker whose run never came expires after max_wait, so the next event runs."""
    coalescer = make(redis_client, key_prefix, max_wait_ms=300)
    target = [Target(AGG, "a1")]
    coalescer.mark(target)
    ttl = redis_client.pttl(KeySchema(key_prefix).pending(AGG, "a1"))
    assert 0 < ttl <= 300
    redis_client.delete(KeySchema(key_prefix).pending(AGG, "a1"))  # what expiry does
    assert coalescer.mark(target) == [Run("a1", (AGG,), None)]
