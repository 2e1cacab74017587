"""The scheduled pass split into shards: account id ranges, each recomputed by a task of its own.

`warm_all` takes a ticket as the pass's generation, finds the accounts' id bounds (min and max
of the account column: two probes of the (account, category) index, and of the warmed scopes,
so accounts that lost their last email still get their zeros) and cuts them into ranges of
`shard_accounts` ids. Each range, plus the all-accounts scope, is one `warm_shard` task: it takes
its own ticket, reads in its own snapshot and writes through the fence like any recompute, so
two shards (of one pass or of overlapping ones) can never overwrite a newer value.

Per shard a marker (`pass:shard:<first id>`) holds the pass that sent it until the shard
finishes; a later pass does not send a shard whose marker still exists, so a backlog is never
doubled. The marker expires on its own once the shard is surely over (message expiry, retries
and the hard time limit), so a shard lost with its worker only delays that range. A lost or
doubled marker costs work, never correctness: the fence orders every write. When the last shard
of a pass finishes, the pass is recorded as `pass:last` (what `dashcache stats` shows).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import redis
from sqlalchemy import Engine, func, select

from dashcache.config import Settings
from dashcache.keys import KeySchema
from dashcache.recompute import RecomputeResult
from dashcache.schema.tables import tables_of
from dashcache.store import RedisStore

ALL = "all"
"""The shard name of the all-accounts scope."""

# KEYS: marker. ARGV: pass generation, ttl ('' to delete). Acts only while the pass owns it.
_OWNED_SCRIPT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 1
"""

# KEYS: progress. ARGV: scopes, written, fenced, idle dropped of the shard. Returns {shards sent,
# shards done, scopes, written, fenced, idle dropped, started} of the pass.
_DONE_SCRIPT = """
local done = redis.call('HINCRBY', KEYS[1], 'done', 1)
local scopes = redis.call('HINCRBY', KEYS[1], 'scopes', ARGV[1])
local written = redis.call('HINCRBY', KEYS[1], 'written', ARGV[2])
local fenced = redis.call('HINCRBY', KEYS[1], 'fenced', ARGV[3])
local idle = redis.call('HINCRBY', KEYS[1], 'idle', ARGV[4])
local got = redis.call('HMGET', KEYS[1], 'shards', 'started')
return {tonumber(got[1] or '0'), done, scopes, written, fenced, idle, got[2] or ''}
"""


@dataclass(frozen=True, slots=True)
class ShardTask:
    """One shard of a pass: its generation, and its account ids [low, high) (None: all)."""

    generation: int
    low: int | None
    high: int | None

    @property
    def name(self) -> str:
        """The marker's name: the first account id, or `all`."""
        return ALL if self.low is None else str(self.low)

    @property
    def accounts(self) -> range | None:
        """The account ids of the shard; None for the all-accounts scope."""
        return None if self.low is None or self.high is None else range(self.low, self.high)

    def args(self) -> list[int | None]:
        """The task's arguments."""
        return [self.generation, self.low, self.high]


def shard_ranges(low: int, high: int, size: int) -> list[tuple[int, int]]:
    """[low, high] (inclusive) cut into half-open ranges of `size` ids, aligned on multiples of
    `size` so a shard keeps the same ids (and marker) from pass to pass."""
    start = low - low % size
    return [(first, first + size) for first in range(start, high + 1, size)]


def account_bounds(engine: Engine, store: RedisStore) -> tuple[int, int] | None:
    """The lowest and highest account id with emails or warmed before; None when there are none
    or the mapping has no account column."""
    tables = tables_of(engine)
    if tables.account is None:
        return None
    with engine.connect() as conn:
        low, high = conn.execute(select(func.min(tables.account), func.max(tables.account))).one()
    ids = [i for i in (low, high) if i is not None] + warmed_bounds(store)
    return (min(ids), max(ids)) if ids else None


def warmed_bounds(store: RedisStore) -> list[int]:
    """The lowest and highest warmed account id (empty when none)."""
    warmed = store.warmed_accounts()
    return [warmed[0], warmed[-1]] if warmed else []


class PassMarkers:
    """The Redis markers of scheduled passes and their shards."""

    def __init__(self, client: redis.Redis, keys: KeySchema, settings: Settings) -> None:
        self.client = client
        self.keys = keys
        period, hard_limit = settings.refresh_seconds, settings.task_time_limit_seconds + 30
        self.ttl = period + hard_limit + 60
        """A marker outlives its shard: the message expires after one period unstarted, each
        attempt renews it and ends within the hard limit, a retry waits at most 30 s more."""
        self.progress_ttl = max(4 * self.ttl, 3600)
        self._owned = client.register_script(_OWNED_SCRIPT)
        self._done = client.register_script(_DONE_SCRIPT)

    def send(
        self,
        generation: int,
        shards: list[ShardTask],
        started: datetime,
        sender: Callable[[ShardTask], None],
    ) -> list[ShardTask]:
        """Send each shard whose previous one is over; returns those sent."""
        pipe = self.client.pipeline(transaction=False)
        for shard in shards:
            pipe.set(self.keys.shard_marker(shard.name), generation, nx=True, ex=self.ttl)
        claimed = [shard for shard, won in zip(shards, pipe.execute(), strict=True) if won]
        progress = self.keys.pass_progress(generation)
        self.client.hset(progress, mapping={"shards": len(claimed), "started": started.isoformat()})
        self.client.expire(progress, self.progress_ttl)
        for shard in claimed:
            sender(shard)
        return claimed

    def renew(self, shard: ShardTask) -> bool:
        """At the start of each attempt: keep the marker while the shard runs; False when the
        marker is another pass's (this message was doubled: the other one runs)."""
        return bool(
            self._owned(
                keys=[self.keys.shard_marker(shard.name)], args=[shard.generation, self.ttl]
            )
        )

    def finish(
        self, shard: ShardTask, result: RecomputeResult, now: datetime
    ) -> dict[str, object] | None:
        """Release the shard's marker and count it done. When it was the pass's last: the pass's
        line (written and fenced summed over its shards), after recording it as `pass:last`."""
        self._owned(keys=[self.keys.shard_marker(shard.name)], args=[shard.generation, ""])
        progress = self.keys.pass_progress(shard.generation)
        counts = [result.scopes, result.written, result.fenced, result.idle_dropped]
        sent, done, scopes, written, fenced, idle, started = self._done(
            keys=[progress], args=counts
        )
        if not started or done != sent:
            return None
        began = datetime.fromisoformat(started.decode())
        record = {
            "at": now.isoformat(),
            "duration_ms": round((now - began).total_seconds() * 1000, 1),
            "scopes": int(scopes),
            "shards": int(sent),
            "idle_dropped": int(idle),
            "generation": shard.generation,
        }
        self.client.set(self.keys.last_pass, json.dumps(record))
        outcome = "written" if fenced == 0 else "fenced"
        return {**record, "outcome": outcome, "written": int(written), "fenced": int(fenced)}


def last_pass(client: redis.Redis, keys: KeySchema) -> dict[str, object] | None:
    """The last scheduled pass whose every shard finished; None before the first."""
    raw = client.get(keys.last_pass)
    return None if raw is None else dict(json.loads(raw))
