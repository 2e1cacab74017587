"""Coalescing markers on a real Redis: leading edge, already pending, trailing, drained accounts."""

from __future__ import annotations

import pytest
import redis

from shared import coalesce
from shared.coalesce import Claim, Coalescer, Run
from shared.config import Settings
from shared.keys import ACCOUNTS_SCOPE, KeySchema, Kind
from shared.targeting import Target

AGG, BD = Kind.AGGREGATES, Kind.BREAKDOWN
ACC = ACCOUNTS_SCOPE


def make(client: redis.Redis, prefix: str, max_wait_ms: int = 2000) -> Coalescer:
    settings = Settings(key_prefix=prefix, event_debounce_ms=250, event_max_wait_ms=max_wait_ms)
    return Coalescer(client, KeySchema(prefix), settings)


def test_idle_key_runs_at_once_then_coalesces(redis_client: redis.Redis, key_prefix: str) -> None:
    """An idle key's first mark asks for an immediate run; marks while pending ask nothing."""
    coalescer = make(redis_client, key_prefix)
    targets = [Target(AGG, "a1"), Target(BD, "a1"), Target(AGG, "all")]
    first = coalescer.mark(targets)
    assert sorted(first, key=lambda run: run.scope) == [
        Run(ACC, (AGG, BD), None),
        Run("all", (AGG,), None),
    ]
    assert coalescer.mark(targets) == []
    assert coalescer.mark([Target(AGG, "a2"), Target(BD, "a3")]) == []
    assert coalescer.mark([Target(BD, "all")]) == [Run("all", (BD,), None)]


def test_mark_during_a_run_asks_for_one_trailing_run(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    """After a claim, the next mark gets the debounce; further marks nothing; release resets."""
    coalescer = make(redis_client, key_prefix)
    target = [Target(AGG, "a1")]
    coalescer.mark(target)
    first = coalescer.claim(ACC, [AGG], "run-1")
    assert coalescer.mark(target) == [Run(ACC, (AGG,), 0.25)]
    assert coalescer.mark([Target(AGG, "a2")]) == []
    second = coalescer.claim(ACC, [AGG], "run-2")
    assert first.accounts == [Target(AGG, "a1")]
    assert sorted(second.accounts) == [Target(AGG, "a1"), Target(AGG, "a2")]
    coalescer.release(first.targets, "run-1")
    assert redis_client.exists(KeySchema(key_prefix).running(AGG, ACC))
    coalescer.release(second.targets, "run-2")
    assert coalescer.mark(target) == [Run(ACC, (AGG,), None)]


def test_claim_drains_dirty_accounts_once(redis_client: redis.Redis, key_prefix: str) -> None:
    """One claim takes every dirty account of its kinds; a later run finds none left."""
    coalescer = make(redis_client, key_prefix)
    coalescer.mark([Target(AGG, f"a{n}") for n in range(1, 6)] + [Target(BD, "a3")])
    claim = coalescer.claim(ACC, [AGG, BD], "run-1")
    assert claim.targets == [Target(AGG, ACC), Target(BD, ACC)]
    assert sorted(claim.accounts) == [Target(AGG, f"a{n}") for n in range(1, 6)] + [
        Target(BD, "a3")
    ]
    assert claim.more == []
    assert not redis_client.exists(KeySchema(key_prefix).dirty_accounts(AGG))
    assert coalescer.claim(ACC, [AGG, BD], "run-2").accounts == []  # a run with nothing to do


def test_drain_limit_leaves_the_rest_pending_for_one_more_run(
    redis_client: redis.Redis, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Accounts beyond the drain limit stay dirty, their target pending, and `more` names them."""
    monkeypatch.setattr(coalesce, "DRAIN_LIMIT", 2)
    coalescer = make(redis_client, key_prefix)
    coalescer.mark([Target(AGG, f"a{n}") for n in range(1, 6)])
    drained = []
    for token in ("run-1", "run-2", "run-3"):
        claim = coalescer.claim(ACC, [AGG], token)
        drained.append((len(claim.accounts), claim.more))
    assert drained == [(2, [AGG]), (2, [AGG]), (1, [])]
    assert coalescer.claim("all", [AGG], "run-4") == Claim([Target(AGG, "all")], [], [])
    assert not redis_client.exists(KeySchema(key_prefix).pending(AGG, ACC))


def test_a_lost_enqueue_heals_when_the_marker_expires(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    """A pending marker whose run never came expires after max_wait, so the next event runs."""
    coalescer = make(redis_client, key_prefix, max_wait_ms=300)
    target = [Target(AGG, "a1")]
    coalescer.mark(target)
    ttl = redis_client.pttl(KeySchema(key_prefix).pending(AGG, ACC))
    assert 0 < ttl <= 300
    redis_client.delete(KeySchema(key_prefix).pending(AGG, ACC))  # what expiry does
    assert coalescer.mark([Target(AGG, "a2")]) == [Run(ACC, (AGG,), None)]
    assert sorted(coalescer.claim(ACC, [AGG], "run-1").accounts) == [
        Target(AGG, "a1"),
        Target(AGG, "a2"),
    ]
