"""The strategies compared, behind one protocol: live and ttl-invalidate (the others have modules).

Every strategy serves the same numbers (the one-pass queries of `dashcache.stats`); they differ
in where the numbers come from and when they are recomputed.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import redis
from sqlalchemy import Engine

from dashcache import clock
from dashcache.bench.mutations import Mutation
from dashcache.config import Settings
from dashcache.db import make_engine
from dashcache.keys import Kind, Scope, scope_token
from dashcache.recompute import snapshot, to_data
from dashcache.stats import ScopeStats, compute_scope
from dashcache.store import Envelope

TTL_SECONDS = 600


@dataclass(frozen=True, slots=True)
class Reading:
    """What a dashboard read returned: the aggregates dict, or [name, count] pairs."""

    data: Any
    computed_at: datetime


@dataclass(frozen=True, slots=True)
class BenchContext:
    """What every strategy is built from: the bench database, a Redis client, a key prefix.

    `settings` point at the bench database under the run's own key prefix; `log_dir` keeps the
    logs of processes a strategy starts.
    """

    settings: Settings
    redis: redis.Redis
    log_dir: Path

    @property
    def database_url(self) -> str:
        """The bench database."""
        return self.settings.database_url

    @property
    def prefix(self) -> str:
        """The run's key prefix."""
        return self.settings.key_prefix

    @property
    def max_breakdown(self) -> int:
        """Breakdown entries every strategy serves."""
        return self.settings.max_breakdown


class Strategy(Protocol):
    """A way to serve dashboard values; `start` before reading, `stop` releases everything."""

    name: str

    def start(self) -> None:
        """Prepare (create views, start processes, warm) before the first read."""

    def read(self, kind: Kind, account_id: Scope) -> Reading:
        """One dashboard read, the way a web process would do it."""

    def on_commit(self, batch: Sequence[Mutation]) -> None:
        """React to the mutations of one transaction, called after its commit."""

    def make_cold(self, account_id: Scope) -> None:
        """Forget anything precomputed for a scope, so the next read finds nothing."""

    def disconnect(self) -> None:
        """Close pooled database connections (the next read opens new ones)."""

    def stop(self) -> None:
        """Stop background work and close every connection."""


def reading(stats: ScopeStats, kind: Kind, computed_at: datetime) -> Reading:
    """A reading of one kind from freshly computed stats."""
    return Reading(to_data(stats, kind), computed_at)


def compute_now(
    engine: Engine, account_id: Scope, max_breakdown: int
) -> tuple[ScopeStats, datetime]:
    """One scope's numbers straight from the database, with the time they are true as of."""
    now = clock.now()
    with snapshot(engine) as session:
        return compute_scope(session, account_id, now, max_breakdown), now


class Live:
    """Compute from the database on every read."""

    name = "live"

    def __init__(self, ctx: BenchContext) -> None:
        self.ctx = ctx
        self.engine = make_engine(ctx.database_url, pool_size=64, max_overflow=0)

    def start(self) -> None:
        """Nothing to prepare."""

    def read(self, kind: Kind, account_id: Scope) -> Reading:
        stats, now = compute_now(self.engine, account_id, self.ctx.max_breakdown)
        return reading(stats, kind, now)

    def on_commit(self, batch: Sequence[Mutation]) -> None:
        """Nothing to do: the next read sees it."""

    def make_cold(self, account_id: Scope) -> None:
        """Nothing is kept."""

    def disconnect(self) -> None:
        self.engine.dispose()

    def stop(self) -> None:
        self.engine.dispose()


class TtlInvalidate:
    """Cache-aside: GET; on a miss compute, SET with a 600 s TTL; DEL the keys on every change.

    A miss stores both kinds of its scope (one pass computes both). `racing_sets` counts stores
    of a value whose computation overlapped an invalidation of its scope: each may hold an old
    value until the TTL ends (the classic race; whether it did is what the settle check shows).
    """

    name = "ttl-invalidate"

    def __init__(self, ctx: BenchContext) -> None:
        self.ctx = ctx
        self.engine = make_engine(ctx.database_url, pool_size=64, max_overflow=0)
        self.racing_sets = 0
        self._invalidations: Counter[str] = Counter()
        self._lock = threading.Lock()

    def key(self, kind: Kind, account_id: Scope) -> str:
        """The cache key of one value (the app's own naming, apart from dashcache's)."""
        return f"{self.ctx.prefix}:ttl:{kind.value}:{scope_token(account_id)}"

    def start(self) -> None:
        """Starts cold, like a freshly deployed cache."""

    def read(self, kind: Kind, account_id: Scope) -> Reading:
        raw = self.ctx.redis.get(self.key(kind, account_id))
        if raw is not None:
            body = json.loads(raw)
            return Reading(body["data"], datetime.fromisoformat(body["computed_at"]))
        token = scope_token(account_id)
        with self._lock:
            seen = self._invalidations[token]
        stats, now = compute_now(self.engine, account_id, self.ctx.max_breakdown)
        pipe = self.ctx.redis.pipeline(transaction=False)
        for each in (Kind.AGGREGATES, Kind.BREAKDOWN):
            payload = Envelope(to_data(stats, each), now, 0).to_json()
            pipe.set(self.key(each, account_id), payload, ex=TTL_SECONDS)
        pipe.execute()
        with self._lock:
            if self._invalidations[token] != seen:
                self.racing_sets += 1
        return reading(stats, kind, now)

    def on_commit(self, batch: Sequence[Mutation]) -> None:
        scopes: set[Scope] = {None, *(m.account_id for m in batch)}
        self.ctx.redis.delete(*(self.key(k, s) for s in scopes for k in Kind))
        with self._lock:
            self._invalidations.update(scope_token(scope) for scope in scopes)

    def make_cold(self, account_id: Scope) -> None:
        self.ctx.redis.delete(*(self.key(k, account_id) for k in Kind))

    def disconnect(self) -> None:
        self.engine.dispose()

    def stop(self) -> None:
        keys = list(self.ctx.redis.scan_iter(f"{self.ctx.prefix}:ttl:*", count=1000))
        if keys:
            self.ctx.redis.delete(*keys)
        self.engine.dispose()
