"""Changes published without a delta: the recompute they cause is expected to differ.

An email event without a txid (or one whose value has no delta state) reaches its values by a
recompute, which then finds the stored counts behind: that is the published change, not drift.
Before the recompute is asked for, each such value's delta log gets `~u:<kind>` = the generation
counter; the fenced write counts no drift while it is there, and the first write whose ticket is
newer (its snapshot saw the change) clears it (shared/fence.py). Drift stays what it means: a
change nobody published.
"""

from __future__ import annotations

from collections.abc import Iterable

import redis

from dashcache.events.targeting import Target
from dashcache.keys import KeySchema, parse_scope_token

# KEYS: seq, then per target its scope's delta log.   ARGV: ttl, then per target its kind.
_MARK_UNAPPLIED = """
local seq = redis.call('GET', KEYS[1]) or '0'
for i = 2, #KEYS do
  redis.call('HSET', KEYS[i], '~u:' .. ARGV[i], seq)
  if redis.call('TTL', KEYS[i]) < 0 then redis.call('EXPIRE', KEYS[i], ARGV[1]) end
end
return #KEYS - 1
"""


class UnappliedMarks:
    """Marks values that a published change reaches only through a recompute."""

    def __init__(self, client: redis.Redis, keys: KeySchema, ttl_seconds: int) -> None:
        self.keys = keys
        self.ttl_seconds = ttl_seconds
        self._mark = client.register_script(_MARK_UNAPPLIED)

    def mark(self, targets: Iterable[Target]) -> None:
        """One round trip for every target of one account or `all` (nothing when there are
        none)."""
        chosen = sorted(targets)
        if not chosen:
            return
        logs = [self.keys.deltas(parse_scope_token(t.scope)) for t in chosen]
        kinds = [t.kind.value for t in chosen]
        self._mark(keys=[self.keys.seq, *logs], args=[self.ttl_seconds, *kinds])
