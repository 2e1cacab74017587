"""Applying deltas in Redis: one script call updates every scope of a batch, each atomically.

Per scope, each entry is logged under its identity and applied to each value whose snapshot did
not see its transaction; the value's envelope is rendered again from its state, its TTL kept. No
read of the database. An entry is not applied when:
- its identity is logged with the same rows: a duplicate (a batch sent again);
- the WAL source already applied its transaction in that scope (field `~w:<txid>`): a duplicate;
- it is older than what the log was pruned to: late (every stored value saw it);
- its identity is logged with other rows: a conflict (a later batch's change of an email whose
  change in that transaction was applied already), returned for the caller to recompute.
A value that exists without a state (computed on SQLite, or by an older version) cannot take a
delta: its key is returned as stale, and the caller recomputes it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from dashcache.events.targeting import Target
from dashcache.keys import KeySchema, Kind, parse_scope_token
from dashcache.maintained import LUA_LIBRARY

SCOPES_PER_CALL = 200
"""Scopes one script call updates (so no single call blocks Redis for long)."""

# KEYS: seq, then per scope: agg value, bd value, agg state, bd state, delta log.
# ARGV: ttl, then per scope: entry count n, then n pairs (identity, `txid|before|after`).
# Returns per scope {applied, duplicates, late, agg stale, bd stale, {conflicting identities}}.
_APPLY = (
    LUA_LIBRARY
    + """
local seq = redis.call('GET', KEYS[1]) or '0'
local kinds = {'agg', 'bd'}
local out = {}
local a = 2
for k = 2, #KEYS, 5 do
  local log = KEYS[k + 4]
  local horizon = redis.call('HGET', log, '~h')
  local states, changed = {}, {false, false}
  for j = 1, 2 do states[j] = open_state(redis.call('GET', KEYS[k + 1 + j]), kinds[j]) end
  local applied, dups, late, conflicts = 0, 0, 0, {}
  local n = tonumber(ARGV[a])
  for e = 1, n do
    local identity, entry = ARGV[a + 2 * e - 1], ARGV[a + 2 * e]
    local txid, before_text, after_text = string.match(entry, '^(%d+)|([^|]*)|([^|]*)$')
    if horizon and lt(txid, horizon) then
      late = late + 1
    elseif redis.call('HEXISTS', log, '~w:' .. txid) == 1 then
      dups = dups + 1
    else
      local logged = redis.call('HGET', log, identity)
      if not logged then
        redis.call('HSET', log, identity, txid .. '|' .. seq .. '|' .. before_text .. '|'
          .. after_text)
        applied = applied + 1
        apply_unseen(states, changed, txid, parse_row(before_text), parse_row(after_text))
      elseif string.match(logged, '^%d+|%d+|(.*)$') == before_text .. '|' .. after_text then
        dups = dups + 1
      else
        conflicts[#conflicts + 1] = identity
      end
    end
  end
  a = a + 1 + 2 * n
  local stale = {0, 0}
  if applied > 0 then
    redis.call('EXPIRE', log, ARGV[1])
    stale = write_back(k, states, changed)
  end
  out[#out + 1] = {applied, dups, late, stale[1], stale[2], conflicts}
end
return out
"""
)


@dataclass(slots=True)
class Applied:
    """What applying a batch of deltas did."""

    applied: int = 0
    duplicates: int = 0
    late: int = 0
    stale: set[Target] = field(default_factory=set)
    conflicts: dict[str, list[str]] = field(default_factory=dict)
    """Identity (`txid:email_id`) -> the scope tokens where it conflicted."""


def scope_keys(keys: KeySchema, token: str) -> list[str]:
    """The keys the apply scripts take per scope: both values, both states, the delta log."""
    scope = parse_scope_token(token)
    return [
        keys.value(Kind.AGGREGATES, scope),
        keys.value(Kind.BREAKDOWN, scope),
        keys.state(Kind.AGGREGATES, scope),
        keys.state(Kind.BREAKDOWN, scope),
        keys.deltas(scope),
    ]


class DeltaApplier:
    """Applies delta entries to the values of their scopes under one key prefix."""

    def __init__(self, client: redis.Redis, keys: KeySchema, ttl_seconds: int) -> None:
        self.client = client
        self.keys = keys
        self.ttl_seconds = ttl_seconds
        self._apply = client.register_script(_APPLY)

    def queue(
        self, deltas: Mapping[str, Sequence[tuple[str, str]]], pipe: redis.client.Pipeline
    ) -> list[str]:
        """Queue the script calls of a batch on `pipe`; return the scope tokens, in reply order."""
        tokens = sorted(deltas)
        for start in range(0, len(tokens), SCOPES_PER_CALL):
            keys: list[str] = [self.keys.seq]
            args: list[str | int] = [self.ttl_seconds]
            for token in tokens[start : start + SCOPES_PER_CALL]:
                keys += scope_keys(self.keys, token)
                entries = deltas[token]
                args.append(len(entries))
                for identity, entry in entries:
                    args += [identity, entry]
            self._apply(keys=keys, args=args, client=pipe)
        return tokens

    @staticmethod
    def outcome(tokens: Sequence[str], replies: Sequence[Sequence[Sequence[Any]]]) -> Applied:
        """Sum the replies of the calls `queue` made (in its order)."""
        done = Applied()
        flat = (reply for call in replies for reply in call)
        for token, reply in zip(tokens, flat, strict=True):
            applied, dups, late, agg_stale, bd_stale, conflicts = reply
            done.applied += applied
            done.duplicates += dups
            done.late += late
            if agg_stale:
                done.stale.add(Target(Kind.AGGREGATES, token))
            if bd_stale:
                done.stale.add(Target(Kind.BREAKDOWN, token))
            for identity in conflicts:
                text = identity.decode() if isinstance(identity, bytes) else identity
                done.conflicts.setdefault(text, []).append(token)
        return done
