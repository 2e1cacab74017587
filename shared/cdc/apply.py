"""Applying one chunk of a replicated transaction in Redis: the delta path's state and log.

Each change is one delta entry (`txid|seq|before|after`, shared/maintained.py), logged in its
scope under `txid:email_id:n`, `n` its position among the transaction's email changes, so a
transaction that changes one email twice counts both changes, and a re-delivered change (same
`n`) counts once. Before its first entry in a scope, the script claims the transaction there
(`~w:txid`): an app-published event of that transaction arriving later is a duplicate
(shared/events/apply.py checks the claim). A change whose email the app already published in
that transaction (`txid:email_id` logged) is skipped: the app's event holds that email's net
change. The scheduled pass re-applies and prunes these entries like any other.

At the commit, `commit` raises the applied mark (`P:v1:cdc:applied`, the transaction's end LSN)
after every write of the transaction, so a Redis holding the mark holds them (Redis and its
replicas apply commands in one order). With `min_replicas`, `WAIT` follows in the same round
trip, on the connection that wrote the mark: it covers the mark and every write before it. The
transaction may be confirmed to PostgreSQL only when enough replicas acknowledged.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import redis

from dashcache.events.apply import SCOPES_PER_CALL, Applied, DeltaApplier, scope_keys
from dashcache.keys import KeySchema
from dashcache.logging import get_logger
from dashcache.maintained import LUA_LIBRARY
from dashcache.metrics import Metrics

log = get_logger(__name__)

WAIT_TIMEOUT_MS = 1000
"""How long one `WAIT` waits for the replicas; while they fall short, the stream goes on and
`WAIT` is asked again at most once per this period (each commit raises the mark meanwhile)."""

# KEYS: applied mark. ARGV: end LSN. Sets the mark to the larger of the two, always writing, so
# that a `WAIT` after it covers this connection's writes up to here. Returns the mark.
_MARK_APPLIED = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local lsn = tonumber(ARGV[1])
if current > lsn then lsn = current end
redis.call('SET', KEYS[1], string.format('%d', lsn))
return lsn
"""

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

    def __init__(
        self,
        client: redis.Redis,
        keys: KeySchema,
        ttl_seconds: int,
        min_replicas: int = 0,
        metrics: Metrics | None = None,
    ) -> None:
        self.client = client
        self.keys = keys
        self.ttl_seconds = ttl_seconds
        self.min_replicas = min_replicas
        self.metrics = metrics
        self.short = False
        """The last `WAIT` was acknowledged by fewer than `min_replicas` replicas."""
        self._waited_at = 0.0
        self._apply = client.register_script(_APPLY_WAL)
        self._mark = client.register_script(_MARK_APPLIED)

    def applied(self) -> int | None:
        """The applied mark Redis holds: the end LSN of the last transaction applied (None when
        Redis holds none: restarted empty, or never written)."""
        raw = self.client.get(self.keys.cdc_applied)
        return None if raw is None else int(raw)

    def commit(self, end_lsn: int) -> bool:
        """Raise the applied mark to `end_lsn`, after the transaction's writes; True when they
        are safe to confirm: no replicas required, or `min_replicas` acknowledged them."""
        wait = self.min_replicas > 0 and (
            not self.short or time.monotonic() - self._waited_at >= WAIT_TIMEOUT_MS / 1000
        )
        pipe = self.client.pipeline(transaction=False)
        self._mark(keys=[self.keys.cdc_applied], args=[end_lsn], client=pipe)
        if wait:
            pipe.wait(self.min_replicas, WAIT_TIMEOUT_MS)
        replies = pipe.execute()
        if self.min_replicas == 0:
            return True
        if not wait:
            return False
        self._waited_at = time.monotonic()
        return self._acknowledged(int(replies[1]))

    def _acknowledged(self, replicas: int) -> bool:
        """Note one `WAIT`'s outcome: log the change between short and caught up, count each
        short one."""
        safe = replicas >= self.min_replicas
        if not safe:
            if self.metrics is not None:
                self.metrics.record_wait_short()
            if not self.short:
                log.warning(
                    "cdc.wait_short",
                    replicas=replicas,
                    required=self.min_replicas,
                    timeout_ms=WAIT_TIMEOUT_MS,
                )
        elif self.short:
            log.info("cdc.replicas_caught_up", replicas=replicas, required=self.min_replicas)
        self.short = not safe
        return safe

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
