"""Coalescing event recomputes per key: leading edge, one trailing run, no lost update.

Each target (kind + scope) has two markers in Redis:

- `pending` (SET NX PX max_wait): a recompute of the target is queued. The producer marks every
  target of a batch in ONE script call. A target that was already pending costs nothing more:
  the queued run has not read the database yet, so it will see this mutation too.
- `running` (PX above the hard time limit): a recompute of the target is running.

A newly pending target is sent to the worker at once when it is not running (leading edge: an
isolated change shows in tens of milliseconds) and after the debounce when it is (the trailing
run that picks up everything that arrived meanwhile). The task clears `pending` and sets
`running` in one script BEFORE it takes its ticket and reads the database; so an event landing
during the read finds nothing pending, marks it, and causes exactly one more run. A marker whose
enqueue was lost expires after max_wait; the next event or the schedule heals the key.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import redis
from sqlalchemy import Engine

from shared.config import Settings
from shared.keys import EVERY_SCOPE, KeySchema, Kind, parse_scope_token
from shared.recompute import RecomputeResult, recompute_every_scope, recompute_scope
from shared.store import RedisStore
from shared.targeting import Target

ALREADY_PENDING = -1
LEADING = 0
TRAILING = 1

# KEYS: pending_1, running_1, pending_2, running_2, ...   ARGV: max wait in ms.
# Per target: -1 already pending, 0 newly pending and idle, 1 newly pending while running.
_MARK = """
local out = {}
for i = 1, #KEYS, 2 do
  if redis.call('SET', KEYS[i], '1', 'NX', 'PX', ARGV[1]) then
    out[#out + 1] = redis.call('EXISTS', KEYS[i + 1])
  else
    out[#out + 1] = -1
  end
end
return out
"""

# KEYS: pending_1, running_1, ...   ARGV: run token, running TTL in ms.
_CLAIM = """
for i = 1, #KEYS, 2 do
  redis.call('DEL', KEYS[i])
  redis.call('SET', KEYS[i + 1], ARGV[1], 'PX', ARGV[2])
end
return #KEYS / 2
"""

# KEYS: running markers.   ARGV: run token. A newer run's marker is left alone.
_RELEASE = """
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then redis.call('DEL', KEYS[i]) end
end
return 1
"""


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
        states = self._mark(keys=self._pairs(ordered), args=[self.max_wait_ms])
        grouped: dict[tuple[str, float | None], list[Kind]] = {}
        for target, state in zip(ordered, states, strict=True):
            if state != ALREADY_PENDING:
                countdown = self.debounce_seconds if state == TRAILING else None
                grouped.setdefault((target.scope, countdown), []).append(target.kind)
        return [Run(scope, tuple(kinds), delay) for (scope, delay), kinds in grouped.items()]

    def claim(self, targets: Sequence[Target], token: str) -> None:
        """Clear `pending` and set `running` for the targets; call before reading the database."""
        self._claim(keys=self._pairs(targets), args=[token, self.running_ttl_ms])

    def release(self, targets: Sequence[Target], token: str) -> None:
        """Clear this run's `running` markers."""
        running = [self.keys.running(t.kind, t.scope) for t in targets]
        self._release(keys=running, args=[token])

    def _pairs(self, targets: Iterable[Target]) -> list[str]:
        return [
            key
            for t in targets
            for key in (self.keys.pending(t.kind, t.scope), self.keys.running(t.kind, t.scope))
        ]


def recompute_targets(
    engine: Engine,
    store: RedisStore,
    coalescer: Coalescer,
    scope: str,
    kinds: Sequence[Kind],
    token: str,
    max_breakdown: int,
) -> RecomputeResult:
    """Claim the targets, recompute them through the fence, release them (also on failure)."""
    targets = [Target(kind, scope) for kind in kinds]
    account_id = None if scope == EVERY_SCOPE else parse_scope_token(scope)
    coalescer.claim(targets, token)
    try:
        if scope == EVERY_SCOPE:
            return recompute_every_scope(engine, store, max_breakdown, tuple(kinds))
        return recompute_scope(engine, store, account_id, max_breakdown, tuple(kinds))
    finally:
        coalescer.release(targets, token)
