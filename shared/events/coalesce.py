"""Coalescing event recomputes per key: at most one run starts per debounce, no lost update.

Each target has three markers in Redis:

- `pending` (SET NX PX max_wait): a recompute of the target is queued. The producer marks every
  target of a batch in ONE script call. A target that was already pending costs nothing more:
  the queued run has not read the database yet, so it will see this mutation too.
- `running` (PX above the hard time limit): a recompute of the target is running.
- `cooldown` (PXAT its end, which it also holds): a run of the target started less than a
  debounce ago.

Targets are `all` and `every` per kind, and `accounts` per kind: an account's key is not a
target of its own but a member of the kind's dirty set, and the `accounts` markers coalesce
every account together. So a burst over a thousand accounts costs one run per kind per debounce
(one grouped query over the accounts drained), not one run per account.

The throttle is a guarantee, enforced where runs start: the claim script does not start a
target while its cooldown lives and tells the run how long is left (the run sends itself again
with that countdown). So two runs of one target never start less than a debounce apart, however
the queue delivers them. A newly pending target is sent at once when it is idle and out of its
cooldown (leading edge: an isolated change shows in milliseconds), after the rest of the
cooldown when it is idle but cooling down, and after the debounce when it is running (the
trailing run that picks up everything that arrived meanwhile). The claim runs BEFORE the task
takes its ticket and reads the database: it clears `pending`, sets `running` and `cooldown`, and
pops the dirty accounts; so an event landing during the read marks the target again and causes
exactly one more run. A marker whose enqueue was lost expires after max_wait; the next event or
the schedule heals the key (for accounts, the next event on any account).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import redis

from dashcache.config import Settings
from dashcache.errors import InvalidArgument
from dashcache.events.targeting import Target
from dashcache.keys import (
    ACCOUNTS_SCOPE,
    ALL_SCOPE,
    EVERY_SCOPE,
    KeySchema,
    Kind,
    parse_scope_token,
)

ALREADY_PENDING = -1
WHILE_RUNNING = -2
DRAIN_LIMIT = 1000
"""Most dirty accounts of one kind a run drains (one `IN` list); the rest get another run."""

# KEYS per target: pending, running, dirty set, cooldown; last the call's reply stash.   ARGV:
# max wait in ms, then per target the account scope token to add to the dirty set ('' for none).
# Per target: -1 already pending, -2 newly pending while running, else newly pending and idle:
# the cooldown's ms left. A retry of the same call (same stash key) gets the first reply again.
_MARK = """
local stash = KEYS[#KEYS]
local done = redis.call('GET', stash)
if done then return cjson.decode(done) end
local out = {}
for i = 1, #KEYS - 1, 4 do
  local member = ARGV[(i + 3) / 4 + 1]
  if member ~= '' then redis.call('SADD', KEYS[i + 2], member) end
  if not redis.call('SET', KEYS[i], '1', 'NX', 'PX', ARGV[1]) then
    out[#out + 1] = -1
  elseif redis.call('EXISTS', KEYS[i + 1]) == 1 then
    out[#out + 1] = -2
  else
    out[#out + 1] = math.max(redis.call('PTTL', KEYS[i + 3]), 0)
  end
end
redis.call('SET', stash, cjson.encode(out), 'PX', ARGV[1])
return out
"""

# KEYS per target: pending, running, dirty set, cooldown; last the run token's claim stash.
# ARGV: run token, running TTL in ms, drain limit, max wait in ms, '1' to drain the dirty sets,
# debounce in ms. A second claim with the same token (a retried call whose first ran) changes
# nothing and gets the first reply again, with the accounts it popped.
# Returns {server time in ms, per target {cooldown ms left, more, members}}. The cooldown holds
# the time it ends (ms), set from the same clock reading the start is reported with, so two
# starts of a target are at least a debounce apart to the millisecond. A target still cooling
# down is left untouched. Else: clears pending, sets running and the cooldown, and pops up to
# the limit of the dirty set; when members are left, pending is set again and `more` asks the
# caller to send one more run.
_CLAIM = """
local stash = KEYS[#KEYS]
local done = redis.call('GET', stash)
if done then return cjson.decode(done) end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local ends = string.format('%.0f', now + tonumber(ARGV[6]))
local out = {}
for i = 1, #KEYS - 1, 4 do
  local wait = (tonumber(redis.call('GET', KEYS[i + 3]) or '0') or 0) - now
  local members, more = {}, 0
  if wait <= 0 then
    wait = 0
    redis.call('DEL', KEYS[i])
    redis.call('SET', KEYS[i + 1], ARGV[1], 'PX', ARGV[2])
    redis.call('SET', KEYS[i + 3], ends, 'PXAT', ends)
    if ARGV[5] == '1' then
      members = redis.call('SPOP', KEYS[i + 2], ARGV[3])
      more = redis.call('EXISTS', KEYS[i + 2])
      if more == 1 then redis.call('SET', KEYS[i], '1', 'NX', 'PX', ARGV[4]) end
    end
  end
  out[#out + 1] = {wait, more, members}
end
local reply = {string.format('%.0f', now), out}
redis.call('SET', stash, cjson.encode(reply), 'PX', ARGV[2])
return reply
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


def is_account_token(token: str) -> bool:
    """Whether `token` is a well-formed account scope token (`a<id>`)."""
    try:
        return parse_scope_token(token) is not None
    except InvalidArgument:
        return False


def run_scope(target: Target) -> str:
    """The target whose markers coalesce this one: `accounts` for an account, else itself."""
    return ACCOUNTS_SCOPE if is_account(target.scope) else target.scope


@dataclass(frozen=True, slots=True)
class Claim:
    """What a run claimed: its targets, the accounts drained (and members naming none), kinds
    with accounts left, kinds still cooling down (seconds left), and when it started (ms of the
    Redis clock, the one the cooldowns run on)."""

    targets: list[Target]
    accounts: list[Target]
    rejected: list[Target]
    more: list[Kind]
    cooling: dict[Kind, float]
    started_ms: int


@dataclass(frozen=True, slots=True)
class Run:
    """One recompute to send: a scope (token or `every`), its kinds, and its delay."""

    scope: str
    kinds: tuple[Kind, ...]
    countdown: float | None


class Coalescer:
    """The pending/running/cooldown markers of event recomputes under one key prefix."""

    def __init__(self, client: redis.Redis, keys: KeySchema, settings: Settings) -> None:
        self.client = client
        self.keys = keys
        self.debounce_ms = settings.event_debounce_ms
        self.max_wait_ms = settings.event_max_wait_ms
        self.running_ttl_ms = (settings.task_time_limit_seconds + 60) * 1000
        self._mark = client.register_script(_MARK)
        self._claim = client.register_script(_CLAIM)
        self._release = client.register_script(_RELEASE)

    def mark(self, targets: Iterable[Target], token: str | None = None) -> list[Run]:
        """Mark targets pending in one round trip; return the runs to send (often none).

        The call's `token` (a fresh one unless given) makes it idempotent: a retry of a call that
        ran gets the same runs back, not "already pending".
        """
        ordered = sorted(set(targets))
        if not ordered:
            return []
        keys = [key for t in ordered for key in self._keys(t.kind, run_scope(t))]
        keys.append(self.keys.marked(token or uuid.uuid4().hex))
        members = [t.scope if is_account(t.scope) else "" for t in ordered]
        states = self._mark(keys=keys, args=[self.max_wait_ms, *members])
        grouped: dict[tuple[str, float | None], list[Kind]] = {}
        for target, state in zip(ordered, states, strict=True):
            if state != ALREADY_PENDING:
                delay_ms = self.debounce_ms if state == WHILE_RUNNING else state
                countdown = delay_ms / 1000 if delay_ms > 0 else None
                grouped.setdefault((run_scope(target), countdown), []).append(target.kind)
        return [Run(scope, tuple(kinds), delay) for (scope, delay), kinds in grouped.items()]

    def claim(self, scope: str, kinds: Sequence[Kind], token: str) -> Claim:
        """Claim a run's targets (pending -> running) and drain their dirty accounts.

        Call before reading the database. Targets still cooling down are not claimed (see
        `Claim.cooling`). Only runs of accounts drain (an old-style run of one account too,
        which then also recomputes that account). Idempotent per `token`: a second claim with it
        (a retried call) changes nothing and returns what the first claimed.
        """
        keys = [key for kind in kinds for key in self._keys(kind, scope)]
        keys.append(self.keys.claimed(token))
        drain = "1" if scope == ACCOUNTS_SCOPE or is_account(scope) else "0"
        args: list[str | int] = [
            token,
            self.running_ttl_ms,
            DRAIN_LIMIT,
            self.max_wait_ms,
            drain,
            self.debounce_ms,
        ]
        started_ms, replies = self._claim(keys=keys, args=args)
        claim = Claim([], [], [], [], {}, int(started_ms))
        for kind, (wait_ms, more, members) in zip(kinds, replies, strict=True):
            if wait_ms > 0:
                claim.cooling[kind] = wait_ms / 1000
                continue
            claim.targets.append(Target(kind, scope))
            for member in members:
                drained = Target(kind, member.decode(errors="backslashreplace"))
                (claim.accounts if is_account_token(drained.scope) else claim.rejected).append(
                    drained
                )
            if is_account(scope):
                claim.accounts.append(Target(kind, scope))
            if more:
                claim.more.append(kind)
        return claim

    def release(self, targets: Sequence[Target], token: str) -> None:
        """Clear this run's `running` markers."""
        if targets:
            running = [self.keys.running(t.kind, t.scope) for t in targets]
            self._release(keys=running, args=[token])

    def _keys(self, kind: Kind, scope: str) -> tuple[str, str, str, str]:
        return (
            self.keys.pending(kind, scope),
            self.keys.running(kind, scope),
            self.keys.dirty_accounts(kind),
            self.keys.cooldown(kind, scope),
        )
