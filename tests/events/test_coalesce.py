"""Coalescing markers on a real Redis: leading edge, cooldown, trailing, drained accounts."""

from __future__ import annotations

import itertools

import pytest
import redis

from dashcache.config import Settings
from dashcache.events import coalesce
from dashcache.events.coalesce import Claim, Coalescer, Run
from dashcache.events.targeting import Target
from dashcache.keys import ACCOUNTS_SCOPE, KeySchema, Kind
from tests.helpers import wait_until

AGG, BD = Kind.AGGREGATES, Kind.BREAKDOWN
ACC = ACCOUNTS_SCOPE


def make(
    client: redis.Redis, prefix: str, debounce_ms: int = 250, max_wait_ms: int = 120_000
) -> Coalescer:
    """A coalescer whose pending markers outlive any test (their expiry is stood in for by a
    delete), so no assertion depends on how fast the test runs."""
    settings = Settings(
        key_prefix=prefix, event_debounce_ms=debounce_ms, event_max_wait_ms=max_wait_ms
    )
    return Coalescer(client, KeySchema(prefix), settings)


def cool_off(client: redis.Redis, prefix: str, kind: Kind, target: str) -> None:
    """What the cooldown's expiry does, without waiting for it."""
    client.delete(KeySchema(prefix).cooldown(kind, target))


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
    cool_off(redis_client, key_prefix, AGG, ACC)
    second = coalescer.claim(ACC, [AGG], "run-2")
    assert first.accounts == [Target(AGG, "a1")]
    assert sorted(second.accounts) == [Target(AGG, "a1"), Target(AGG, "a2")]
    coalescer.release(first.targets, "run-1")
    assert redis_client.exists(KeySchema(key_prefix).running(AGG, ACC))
    coalescer.release(second.targets, "run-2")
    cool_off(redis_client, key_prefix, AGG, ACC)
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
    for kind in (AGG, BD):
        cool_off(redis_client, key_prefix, kind, ACC)
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
        cool_off(redis_client, key_prefix, AGG, ACC)
        claim = coalescer.claim(ACC, [AGG], token)
        drained.append((len(claim.accounts), claim.more))
    assert drained == [(2, [AGG]), (2, [AGG]), (1, [])]
    claim = coalescer.claim("all", [AGG], "run-4")
    assert claim == Claim([Target(AGG, "all")], [], [], [], {}, claim.started_ms)
    assert not redis_client.exists(KeySchema(key_prefix).pending(AGG, ACC))


def test_a_lost_enqueue_heals_when_the_marker_expires(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    """A pending marker whose run never came expires after max_wait, so the next event runs."""
    coalescer = make(redis_client, key_prefix)
    target = [Target(AGG, "a1")]
    coalescer.mark(target)
    ttl = redis_client.pttl(KeySchema(key_prefix).pending(AGG, ACC))
    assert 0 < ttl <= 120_000
    redis_client.delete(KeySchema(key_prefix).pending(AGG, ACC))  # what expiry does
    assert coalescer.mark([Target(AGG, "a2")]) == [Run(ACC, (AGG,), None)]
    assert sorted(coalescer.claim(ACC, [AGG], "run-1").accounts) == [
        Target(AGG, "a1"),
        Target(AGG, "a2"),
    ]


def test_a_target_cooling_down_is_not_claimed(redis_client: redis.Redis, key_prefix: str) -> None:
    """A claim within a debounce of the last start claims nothing, drains nothing, keeps pending;
    a mark meanwhile asks for the rest of the cooldown, not for a run at once."""
    coalescer = make(redis_client, key_prefix, debounce_ms=60_000)  # outlives the test
    keys = KeySchema(key_prefix)
    coalescer.mark([Target(AGG, "a1")])
    first = coalescer.claim(ACC, [AGG], "run-1")
    coalescer.release(first.targets, "run-1")
    (run,) = coalescer.mark([Target(AGG, "a2")])
    assert run.scope == ACC
    assert run.countdown is not None
    assert 0 < run.countdown <= 60
    early = coalescer.claim(ACC, [AGG, BD], "run-2")
    assert early.targets == [Target(BD, ACC)]  # BD never ran: it is not cooling down
    assert early.accounts == []
    assert 0 < early.cooling[AGG] <= 60
    assert redis_client.exists(keys.pending(AGG, ACC))
    assert redis_client.smembers(keys.dirty_accounts(AGG)) == {b"a2"}


def test_two_claims_of_a_target_start_a_debounce_apart(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    """However often runs try, the claims that start share the Redis clock and are spaced by at
    least the debounce."""
    coalescer = make(redis_client, key_prefix)
    starts = []
    tries = itertools.count()

    def three_started() -> bool:
        claim = coalescer.claim("all", [AGG], f"run-{next(tries)}")
        if claim.targets:
            starts.append(claim.started_ms)
        return len(starts) == 3

    wait_until(three_started, "three claims to start", seen=lambda: starts, poll=0.02)
    assert all(later - earlier >= 250 for earlier, later in itertools.pairwise(starts))


def test_members_that_are_no_account_token_are_set_apart(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    """A dirty-set member that names no account is drained into `rejected`, never `accounts`."""
    coalescer = make(redis_client, key_prefix)
    coalescer.mark([Target(AGG, "a2")])
    redis_client.sadd(KeySchema(key_prefix).dirty_accounts(AGG), "a-1", "x", b"\xff", "a03")
    claim = coalescer.claim(ACC, [AGG], "run-1")
    assert claim.accounts == [Target(AGG, "a2")]
    assert sorted(target.scope for target in claim.rejected) == ["\\xff", "a-1", "a03", "x"]


def test_a_retried_claim_gets_its_accounts_again(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    """The claim script run twice with one token (a retry whose first call ran) returns the same
    targets and accounts the second time, and a later run with another token finds none left."""
    coalescer = make(redis_client, key_prefix)
    coalescer.mark([Target(AGG, "a1"), Target(AGG, "a2"), Target(BD, "a2")])
    first = coalescer.claim(ACC, [AGG, BD], "run-1")
    again = coalescer.claim(ACC, [AGG, BD], "run-1")
    assert again == first
    assert sorted(again.accounts) == [Target(AGG, "a1"), Target(AGG, "a2"), Target(BD, "a2")]
    assert again.cooling == {}
    for kind in (AGG, BD):
        cool_off(redis_client, key_prefix, kind, ACC)
    assert coalescer.claim(ACC, [AGG, BD], "run-2").accounts == []


def test_a_retried_mark_asks_for_its_runs_again(redis_client: redis.Redis, key_prefix: str) -> None:
    """The mark script run twice with one token returns the same runs the second time, where a
    new call finds the targets already pending and asks for nothing."""
    coalescer = make(redis_client, key_prefix)
    targets = [Target(AGG, "a1"), Target(BD, "all")]
    first = coalescer.mark(targets, "mark-1")
    assert sorted(first, key=lambda run: run.scope) == [
        Run(ACC, (AGG,), None),
        Run("all", (BD,), None),
    ]
    assert coalescer.mark(targets, "mark-1") == first
    assert coalescer.mark(targets, "mark-2") == []
