"""Which accounts' dashboards are read: the scheduled pass warms only those.

`P:v1:reads` is a sorted set: account id -> unix time its dashboard was last read. The hit path
makes no Redis call for it: a hit notes its account in the process's metrics recorder, and the
next metrics flush (one pipeline every `DASHCACHE_METRICS_FLUSH_SECONDS`) adds the accounts read
since, each at most once an hour per process (`Metrics.record_hit`). A reader's fallback (a miss)
and the refresh a stale read asks for (`warm_scope`) mark at once. A pass meeting an account with
no mark (new, or from before this key existed) marks it, so every account gets the full idle
period before it can be dropped. With metrics off (flush seconds 0) hits mark nothing: an account
read only through hits then drops out once per idle period, is served stale once, and rejoins.

A dropped account's scope leaves the warmed set and its values are no longer rewritten, so they
expire after their TTL; events keep updating them until then (deltas and event recomputes).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TypeVar

import redis

from dashcache.keys import KeySchema, Scope, scope_token

DAY = 86400
V = TypeVar("V")


def read_mark(account_id: int, now: datetime) -> dict[str, float]:
    """The `reads` member and score noting a read of `account_id` at `now` (ZADD mapping)."""
    return {str(account_id): now.timestamp()}


class ReadMarks:
    """The last-read marks of accounts, and the idle ones a pass drops."""

    def __init__(self, client: redis.Redis, keys: KeySchema, idle_days: int) -> None:
        self.client = client
        self.keys = keys
        self.idle_seconds = idle_days * DAY

    def mark(self, account_id: Scope, now: datetime) -> None:
        """Note a read of `account_id`'s dashboard (the all-accounts scope is never idle)."""
        if account_id is not None:
            self.client.zadd(self.keys.reads, read_mark(account_id, now))

    def keep_read(self, batch: Mapping[Scope, V], now: datetime) -> tuple[dict[Scope, V], int]:
        """`batch` without its idle accounts, and how many it dropped: one ZMSCORE, plus a
        ZADD of the accounts never marked and an SREM of the dropped ones' scopes."""
        ids = [account_id for account_id in batch if account_id is not None]
        if not ids:
            return dict(batch), 0
        scores = self.client.zmscore(self.keys.reads, [str(i) for i in ids])
        moment = now.timestamp()
        cutoff = moment - self.idle_seconds
        unmarked = {str(i): moment for i, score in zip(ids, scores, strict=True) if score is None}
        idle = {
            i for i, score in zip(ids, scores, strict=True) if score is not None and score < cutoff
        }
        pipe = self.client.pipeline(transaction=False)
        if unmarked:
            pipe.zadd(self.keys.reads, unmarked, nx=True)
        if idle:
            pipe.srem(self.keys.scopes, *(scope_token(i) for i in idle))
        pipe.execute()
        kept = {scope: value for scope, value in batch.items() if scope not in idle}
        return kept, len(idle)
