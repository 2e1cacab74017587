"""Applying one chunk of a replicated transaction in Redis: the delta path's state and log.

Each change is one delta entry (`txid|seq|before|after`, shared/maintained.py), logged in its
scope under `txid:email_id:n`, `n` its position among the transaction's email changes, so a
transaction that changes one email twice counts both changes, and a re-delivered change (same
`n`) counts once. Before its first entry in a scope, the script claims the transaction there
(`~w:txid`): an app-published event of that transaction arriving later is a duplicate
(shared/events/apply.py checks the claim). A change whose email the app already published in
that transaction (`txid:email_id` logged) is skipped: the app's event holds that email's net
change. The scheduled pass re-applies and prunes these entries like any other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import redis

from dashcache.events.apply import SCOPES_PER_CALL, Applied, DeltaApplier, scope_keys
from dashcache.keys import KeySchema
from dashcache.maintained import LUA_LIBRARY

Change = str
"""One change as the script reads it: the line `email id,position,before|after\n` (rows as delta
entries spell them; `position` its place among its transaction's email changes)."""

# KEYS: seq, then per scope: agg value, bd value, agg state, bd state, delta log.
# ARGV: ttl, txid, then per scope: change count n, then its changes as one string of lines
# `email id,position,rows` (one argument per scope: far fewer to encode and parse than per change).
# Returns per scope {applied, duplicates, late, agg stale, bd stale, {}} (the reply of
# shared/events/apply.py's script: a replicated change never conflicts).
_APPLY_WAL = (
    LUA_LIBRARY
    + """
local seq = redis.call('GET', KEYS[1]) or '0'
local ttl, txid = ARGV[1], ARGV[2]
local kinds = {'agg', 'bd'}
local out = {}
local a = 3
for k = 2, #KEYS, 5 do
  local log = KEYS[k + 4]
  local horizon = redis.call('HGET', log, '~h')
  local n = tonumber(ARGV[a])
  local states, changed = {}, {false, false}
  local applied, dups, late = 0, 0, 0
  if horizon and lt(txid, horizon) then
    late = n
  else
    for j = 1, 2 do states[j] = open_state(redis.call('GET', KEYS[k + 1 + j]), kinds[j]) end
    redis.call('HSET', log, '~w:' .. txid, txid .. '|w')
    for email, position, rows in string.gmatch(ARGV[a + 1], '(%d+),(%d+),([^\\n]*)\\n') do
      local base = txid .. ':' .. email
      if redis.call('HEXISTS', log, base) == 1 then
        dups = dups + 1
      elseif redis.call('HSETNX', log, base .. ':' .. position,
          txid .. '|' .. seq .. '|' .. rows) == 0 then
        dups = dups + 1
      else
        applied = applied + 1
        local before_text, after_text = string.match(rows, '^([^|]*)|([^|]*)$')
        apply_unseen(states, changed, txid, parse_row(before_text), parse_row(after_text))
      end
    end
    redis.call('EXPIRE', log, ttl)
  end
  a = a + 2
  local stale = {0, 0}
  if applied > 0 then stale = write_back(k, states, changed) end
  out[#out + 1] = {applied, dups, late, stale[1], stale[2], {}}
end
return out
"""
)


class WalApplier:
    """Applies chunks of replicated transactions to the values under one key prefix."""

    def __init__(self, client: redis.Redis, keys: KeySchema, ttl_seconds: int) -> None:
        self.client = client
        self.keys = keys
        self.ttl_seconds = ttl_seconds
        self._apply = client.register_script(_APPLY_WAL)

    def apply(self, txid: int, changes: Mapping[str, Sequence[Change]]) -> Applied:
        """Apply one chunk (scope token -> its changes) of transaction `txid`; one round trip."""
        if not changes:
            return Applied()
        pipe = self.client.pipeline(transaction=False)
        tokens = sorted(changes)
        for start in range(0, len(tokens), SCOPES_PER_CALL):
            keys: list[str] = [self.keys.seq]
            args: list[str | int] = [self.ttl_seconds, str(txid)]
            for token in tokens[start : start + SCOPES_PER_CALL]:
                keys += scope_keys(self.keys, token)
                entries = changes[token]
                args += [len(entries), "".join(entries)]
            self._apply(keys=keys, args=args, client=pipe)
        return DeltaApplier.outcome(tokens, pipe.execute())
