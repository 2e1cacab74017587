"""Coalescing event recomputes per key: leading edge, one trailing run, no lost update.

Each target has two markers in Redis:

- `pending` (SET NX PX max_wait): a recompute of the target is queued. The producer marks every
  target of a batch in ONE script call. A target that was already pending costs nothing more:
  the queued run has not read the database yet, so it will see this mutation too.
- `running` (PX above the hard time limit): a recompute of the target is running.

Targets are `all` and `every` per kind, and `accounts` per kind: an account's key is not a
target of its own but a member of the kind's dirty set, and the `accounts` markers coalesce
every account together. So a burst over a thousand accounts costs one run per kind per debounce
(one grouped query over the accounts drained), not one run per account.

A newly pending target is sent to the worker at once when it is not running (leading edge: an
isolated change shows in tens of milliseconds) and after the debounce when it is (the trailing
run that picks up everything that arrived meanwhile). The task claims in one script BEFORE it
takes its ticket and reads the database: it clears `pending`, sets `running`, and pops the dirty
accounts; so an event landing during the read marks the target again and causes exactly one
more run. A run of accounts that finds none dirty (an earlier run drained them) is skipped.
A marker whose enqueue was lost expires after max_wait; the next event or the schedule heals
the key (for accounts, the next event on any account).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import redis
from sqlalchemy import Engine

from shared.config import Settings
from shared.keys import (
    ACCOUNTS_SCOPE,
    ALL_SCOPE,
    EVERY_SCOPE,
    KeySchema,
    Kind,
    parse_scope_token,
)
from shared.recompute import (
    RecomputeResult,
    recompute_accounts,
    recompute_every_scope,
    recompute_scope,
)
from shared.store import RedisStore
from shared.targeting import Target

ALREADY_PENDING = -1
LEADING = 0
TRAILING = 1
DRAIN_LIMIT = 1000
"""Most dirty accounts of one kind a run drains (one `IN` list); the rest get another run."""

# KEYS per target: pending, running, dirty set.   ARGV: max wait in ms, then per target the
# account scope token to add to the dirty set ('' for none).
# Per target: -1 already pending, 0 newly pending and idle, 1 newly pending while running.
_MARK = """
local out = {}
for i = 1, #KEYS, 3 do
  local member = ARGV[(i + 2) / 3 + 1]
  if member ~= '' then redis.call('SADD', KEYS[i + 2], member) end
  if redis.call('SET', KEYS[i], '1', 'NX', 'PX', ARGV[1]) then
    out[#out + 1] = redis.call('EXISTS', KEYS[i + 1])
  else
    out[#out + 1] = -1
  end
end
return out
"""

# KEYS per target: pending, running, dirty set.   ARGV: run token, running TTL in ms, drain
# limit, max wait in ms, '1' to drain the dirty sets. Per target {more, members}: clears pending,
# sets running and pops up to the limit of the dirty set; when members are left, pending is set
# again and `more` asks the caller to send one more run.
_CLAIM = """
local out = {}
for i = 1, #KEYS, 3 do
  redis.call('DEL', KEYS[i])
  redis.call('SET', KEYS[i + 1], ARGV[1], 'PX', ARGV[2])
  local members, more = {}, 0
  if ARGV[5] == '1' then
    members = redis.call('SPOP', KEYS[i + 2], ARGV[3])
    more = redis.call('EXISTS', KEYS[i + 2])
    if more == 1 then redis.call('SET', KEYS[i], '1', 'NX', 'PX', ARGV[4]) end
  end
  out[#out + 1] = {more, members}
end
return out
"""

# KEYS: running markers.   ARGV: run token. A newer run's marker is left alone.
_RELEASE = """
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then redis.call('DEL', KEYS[i]) end
end
return 1
"""


def is_account(scope: str) -> bool:
    """Whether a target's scope token names one account (not `all`, `every` nor `accounts`)."""
    return scope not in (ALL_SCOPE, EVERY_SCOPE, ACCOUNTS_SCOPE)


def run_scope(target: Target) -> str:
    """The target whose markers coalesce this one: `accounts` for an account, else itself."""
    return ACCOUNTS_SCOPE if is_account(target.scope) else target.scope


@dataclass(frozen=True, slots=True)
class Claim:
    """What a run claimed: its targets, the accounts drained, and kinds with accounts left."""

    targets: list[Target]
    accounts: list[Target]
    more: list[Kind]


@dataclass(frozen=True, slots=True)
class Run:
    """One recompute to send: a scope (token or `every`), its kinds, and its delay."""

    scope: str
    kinds: tuple[Kind, ...]
    countdown: float | None


class Coalescer:
    """The pending/running markers of event recomputes under one key prefix."""

    def __init__(self, client: redis.Redis, keys: KeySchema, settings: Settings) -> None:
        self.client = client
        self.keys = keys
        self.debounce_seconds = settings.event_debounce_ms / 1000
        self.max_wait_ms = settings.event_max_wait_ms
        self.running_ttl_ms = (settings.task_time_limit_seconds + 60) * 1000
        self._mark = client.register_script(_MARK)
        self._claim = client.register_script(_CLAIM)
        self._release = client.register_script(_RELEASE)

    def mark(self, targets: Iterable[Target]) -> list[Run]:
        """Mark targets pending in one round trip; return the runs to send (often none)."""
        ordered = sorted(set(targets))
        if not ordered:
            return []
        keys = [key for t in ordered for key in self._triple(t.kind, run_scope(t))]
        members = [t.scope if is_account(t.scope) else "" for t in ordered]
        states = self._mark(keys=keys, args=[self.max_wait_ms, *members])
        grouped: dict[tuple[str, float | None], list[Kind]] = {}
        for target, state in zip(ordered, states, strict=True):
            if state != ALREADY_PENDING:
                countdown = self.debounce_seconds if state == TRAILING else None
                grouped.setdefault((run_scope(target), countdown), []).append(target.kind)
        return [Run(scope, tuple(kinds), delay) for (scope, delay), kinds in grouped.items()]

    def claim(self, scope: str, kinds: Sequence[Kind], token: str) -> Claim:
        """Claim a run's targets (pending -> running) and drain their dirty accounts.

        Call before reading the database. Only runs of accounts drain (an old-style run of one
        account too, which then also recomputes that account).
        """
        keys = [key for kind in kinds for key in self._triple(kind, scope)]
        drain = "1" if scope == ACCOUNTS_SCOPE or is_account(scope) else "0"
        args: list[str | int] = [token, self.running_ttl_ms, DRAIN_LIMIT, self.max_wait_ms, drain]
        replies = self._claim(keys=keys, args=args)
        claim = Claim([Target(kind, scope) for kind in kinds], [], [])
        for kind, (more, members) in zip(kinds, replies, strict=True):
            claim.accounts.extend(Target(kind, member.decode()) for member in members)
            if is_account(scope):
                claim.accounts.append(Target(kind, scope))
            if more:
                claim.more.append(kind)
        return claim

    def release(self, targets: Sequence[Target], token: str) -> None:
        """Clear this run's `running` markers."""
        running = [self.keys.running(t.kind, t.scope) for t in targets]
        self._release(keys=running, args=[token])

    def _triple(self, kind: Kind, scope: str) -> tuple[str, str, str]:
        return (
            self.keys.pending(kind, scope),
            self.keys.running(kind, scope),
            self.keys.dirty_accounts(kind),
        )


def recompute_targets(
    engine: Engine,
    store: RedisStore,
    coalescer: Coalescer,
    run: Run,
    token: str,
    max_breakdown: int,
    send: Callable[[list[Run]], None],
) -> RecomputeResult | None:
    """Claim, recompute through the fence in one pass, release (also on failure).

    None for a run of accounts that finds none dirty (an earlier run drained them: nothing to
    do). Dirty accounts left over by the drain limit get one more run (`send`). On failure the
    claimed accounts (or targets) are marked pending again, so the task's retry claims them.
    """
    claim = coalescer.claim(run.scope, run.kinds, token)
    try:
        if claim.more:
            send([Run(run.scope, tuple(claim.more), None)])
        if run.scope == ACCOUNTS_SCOPE and not claim.accounts:
            return None
        return _recompute(engine, store, run.scope, claim, max_breakdown)
    except Exception:
        coalescer.mark(claim.accounts or claim.targets)
        raise
    finally:
        coalescer.release(claim.targets, token)


def _recompute(
    engine: Engine, store: RedisStore, scope: str, claim: Claim, max_breakdown: int
) -> RecomputeResult:
    kinds = tuple(target.kind for target in claim.targets)
    if scope == EVERY_SCOPE:
        return recompute_every_scope(engine, store, max_breakdown, kinds)
    if scope == ALL_SCOPE:
        return recompute_scope(engine, store, None, max_breakdown, kinds)
    by_account: dict[int, tuple[Kind, ...]] = {}
    for target in claim.accounts:
        account_id = parse_scope_token(target.scope)
        if account_id is not None:
            by_account[account_id] = (*by_account.get(account_id, ()), target.kind)
    return recompute_accounts(engine, store, by_account, max_breakdown)


def run_label(scope: str, result: RecomputeResult) -> str:
    """A run's scope in its log line: `a7` for one account, `a7+36` for 37 drained together."""
    accounts = sorted(scope for scope in result.stats if scope is not None)
    if scope != ACCOUNTS_SCOPE or not accounts:
        return scope
    extra = len(accounts) - 1
    return f"a{accounts[0]}+{extra}" if extra else f"a{accounts[0]}"
