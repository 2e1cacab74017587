"""Changes published without a delta: the recompute they cause expects their difference.

An email event without a txid reaches its values by a recompute, which then finds the stored
counts behind by that event's change. Before the recompute is asked for, each such value's
delta log adds the change the event's own rows explain to `~e:<kind>:<seq>:<item>` (`seq` the
generation counter, `item` `t` / `a` / `u` for total / auto_labeled / unread, or a category id;
HINCRBY, so several events before one recompute add up). The fenced write takes the expected
change out of the difference it finds; what is left is drift (shared/fence.py).

A change whose rows do not explain it (a value without delta state, a conflicting or unnetted
event) marks `~u:<kind>` = the counter: the write counts no drift while it is there, and the
first write whose ticket is newer clears it.
"""

from __future__ import annotations

from collections.abc import Iterable

import redis

from dashcache.events.targeting import Target
from dashcache.events.types import EmailCreated, EmailDeleted, EmailRow, EmailUpdated
from dashcache.keys import ALL_SCOPE, KeySchema, Kind, parse_scope_token, scope_token

EmailEvent = EmailCreated | EmailUpdated | EmailDeleted
Expected = dict[Target, dict[str, int]]

# KEYS: seq, then per mark its scope's delta log.   ARGV: ttl, then per mark `u:<kind>` or
# `e:<kind>:item=n,item=n`.
_MARK_UNAPPLIED = """
local seq = redis.call('GET', KEYS[1]) or '0'
for i = 2, #KEYS do
  local arg = ARGV[i]
  local kind, items = string.match(arg, '^e:(%a+):(.*)$')
  if kind then
    for item, n in string.gmatch(items, '([^=,]+)=(%-?%d+)') do
      redis.call('HINCRBY', KEYS[i], '~e:' .. kind .. ':' .. seq .. ':' .. item, n)
    end
  else
    redis.call('HSET', KEYS[i], '~' .. arg, seq)
  end
  if redis.call('TTL', KEYS[i]) < 0 then redis.call('EXPIRE', KEYS[i], ARGV[1]) end
end
return #KEYS - 1
"""


def expected_changes(events: Iterable[EmailEvent]) -> Expected:
    """Per value, the net change of its counted numbers the events' rows explain (zeros left
    out; a value left with none is not in the result)."""
    found: Expected = {}
    for event in events:
        before = None if isinstance(event, EmailCreated) else event.before
        after = None if isinstance(event, EmailDeleted) else event.after
        for scope in {scope_token(event.account_id), ALL_SCOPE}:
            for row, sign in ((before, -1), (after, 1)):
                if row is not None:
                    _add_row(found, scope, row, sign)
    return {
        target: kept
        for target, items in found.items()
        if (kept := {item: n for item, n in items.items() if n})
    }


def _add_row(found: Expected, scope: str, row: EmailRow, sign: int) -> None:
    counts = found.setdefault(Target(Kind.AGGREGATES, scope), {})
    for item, counted in (("t", True), ("a", row.is_auto_labeled), ("u", row.is_unread)):
        if counted:
            counts[item] = counts.get(item, 0) + sign
    if row.category_id is not None:
        counts = found.setdefault(Target(Kind.BREAKDOWN, scope), {})
        item = str(row.category_id)
        counts[item] = counts.get(item, 0) + sign


class UnappliedMarks:
    """Marks values that a published change reaches only through a recompute."""

    def __init__(self, client: redis.Redis, keys: KeySchema, ttl_seconds: int) -> None:
        self.keys = keys
        self.ttl_seconds = ttl_seconds
        self._mark = client.register_script(_MARK_UNAPPLIED)

    def mark(self, events: Iterable[EmailEvent], unexplained: Iterable[Target]) -> None:
        """One round trip: the expected change of every value the events reach, and an
        unexplained mark on `unexplained` (nothing when there is neither)."""
        args = [
            (target, f"e:{target.kind.value}:" + ",".join(f"{i}={n}" for i, n in items.items()))
            for target, items in sorted(expected_changes(events).items())
        ]
        args += [(target, f"u:{target.kind.value}") for target in sorted(set(unexplained))]
        if not args:
            return
        logs = [self.keys.deltas(parse_scope_token(target.scope)) for target, _ in args]
        self._mark(keys=[self.keys.seq, *logs], args=[self.ttl_seconds, *(a for _, a in args)])
