"""The library web processes use to read dashboards: Redis first, the database only when needed.

    reader = DashboardReader.from_env()
    v = reader.get_aggregates(account_id=None)   # v.data, v.computed_at, v.age, v.source, v.stale
    b = reader.get_category_breakdown(limit=10, account_id=42, max_age=30)
    f = reader.get_aggregates(account_id=42, fresh=True)

What one read does:

- Hit (the common case): one GET and a JSON parse, the weekly numbers moved to the moment of
  the read (shared/windows.py). No lock, no extra round trip, no log line. Once the value's
  moves end (every few minutes), one reader's read advances it in Redis (shared/advance.py).
- Older than the soft age: served at once with `stale=True`, and the worker is asked to refresh
  the scope in the background, at most once per scope per refresh period
  (shared/reader/refresh.py).
- Miss, past the hard TTL, or older than `max_age`: single flight
  (shared/reader/singleflight.py). One reader, across every process, computes the scope from the
  database and writes it through the generation fence; the others wait for its value until
  DASHCACHE_WAIT_SECONDS.
- `fresh=True`: computed from the database now and written through the fence (`source="fresh"`).
- Redis failing: after a few failed calls a circuit breaker (shared/reader/breaker.py) opens and
  reads stop calling Redis, so none waits on a Redis timeout; they are computed from the
  database, or raise `CacheUnavailable` (DASHCACHE_ON_REDIS_DOWN=error). Once per breaker period
  a background PING checks Redis and closes the breaker when it answers. No redis-py exception
  escapes.
- Every database computation holds one of the process's DASHCACHE_COMPUTE_LIMIT slots
  (shared/reader/slots.py). The database failing, or no slot in time: `DashboardUnavailable`.
- Start-up connects to nothing, so a reader serves what Redis holds while the database is down;
  a schema mapping is checked by the first computation (shared/reader/database.py).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Literal

from redis import RedisError
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from dashcache import clock
from dashcache.config import Settings
from dashcache.keys import KeySchema, Kind, Scope, check_read_options
from dashcache.metrics import Metrics, RecomputeOutcome, metrics_for
from dashcache.reader.breaker import CircuitBreaker
from dashcache.reader.database import ReaderDatabase
from dashcache.reader.redis_health import RedisHealth
from dashcache.reader.refresh import RefreshRequester
from dashcache.reader.rules import (
    LOG_INTERVAL_SECONDS,
    DashboardValue,
    Found,
    Source,
    breakdown_value,
    check_limit,
    check_scope,
    computed,
    database_failed,
    redis_down_error,
    usable,
    usable_now,
)
from dashcache.reader.singleflight import SingleFlight
from dashcache.reader.slots import ComputeSlots
from dashcache.reader.throttle import ThrottledLog
from dashcache.reads import read_mark
from dashcache.recompute import write_result
from dashcache.store import RedisStore, make_redis
from dashcache.windows import WindowsExpired

__all__ = ["LOG_INTERVAL_SECONDS", "DashboardReader", "DashboardValue", "Found", "Source"]


class DashboardReader:
    """Reads dashboard values for one deployment (one key prefix). One per process; thread-safe."""

    def __init__(
        self,
        settings: Settings,
        store: RedisStore,
        database: ReaderDatabase | Engine,
        metrics: Metrics,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        if not isinstance(database, ReaderDatabase):
            database = ReaderDatabase.of(database)
        self.settings = settings
        self.store = store
        self.database = database
        self.engine = database.engine
        self.metrics = metrics
        self.outages = ThrottledLog(__name__, LOG_INTERVAL_SECONDS)
        breaker = breaker or CircuitBreaker(
            settings.breaker_failures, settings.breaker_reset_seconds
        )
        self.redis = RedisHealth(store.client, breaker, self.outages, settings.on_redis_down)
        self.flight = SingleFlight(store.client, store.keys, settings.lock_seconds, self.redis)
        self.slots = ComputeSlots(settings.compute_limit)
        self.refresher = RefreshRequester(settings, store.client, store.keys)
        self._ttl = settings.ttl_seconds
        self._soft_age = settings.soft_age
        self._single_tenant = database.single_tenant

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DashboardReader:
        """A reader configured from the environment (see README, Configuration)."""
        return cls.from_settings(Settings.from_env(env))

    @classmethod
    def from_settings(
        cls, settings: Settings, breaker: CircuitBreaker | None = None
    ) -> DashboardReader:
        """A reader with its own Redis client and database engine, both with short timeouts.

        Nothing connects here: the reader starts without Redis or the database. A schema
        mapping (DASHCACHE_SCHEMA_FILE) is checked against the database when a read first needs
        it (`dashcache.reader.database.ReaderDatabase`).
        """
        database = ReaderDatabase.from_settings(settings)
        client = make_redis(settings.redis_url, settings.redis_timeout_seconds, False)
        keys = KeySchema(settings.key_prefix)
        store = RedisStore(client, keys, settings.ttl_seconds, settings.max_value_bytes)
        return cls(settings, store, database, metrics_for(settings), breaker)

    def get_aggregates(
        self, account_id: Scope = None, *, fresh: bool = False, max_age: float | None = None
    ) -> DashboardValue:
        """Totals, unread, auto-labeled, categories and weekly growth of a scope.

        `fresh=True` computes from the database now; `max_age` (seconds) treats an older cached
        value as missing.
        """
        account_id = check_scope(account_id, self._single_tenant)
        return DashboardValue(*self._read(Kind.AGGREGATES, account_id, fresh, max_age))

    def get_category_breakdown(
        self,
        limit: int = 10,
        account_id: Scope = None,
        *,
        fresh: bool = False,
        max_age: float | None = None,
    ) -> DashboardValue:
        """The top `limit` categories of a scope: name -> count, by count desc then name."""
        limit = check_limit(limit, self.settings.max_breakdown)
        account_id = check_scope(account_id, self._single_tenant)
        return breakdown_value(self._read(Kind.BREAKDOWN, account_id, fresh, max_age), limit)

    def close(self) -> None:
        """Finish refresh requests in flight; release Redis, broker and database connections."""
        self.refresher.close()
        self.store.client.close()
        self.database.dispose()

    def _read(self, kind: Kind, account_id: Scope, fresh: bool, max_age: float | None) -> Found:
        if fresh is not False or max_age is not None:
            check_read_options(fresh, max_age)
        try:
            if not self.redis.up:
                self.redis.probe_if_due()
                if fresh:
                    return self._compute(kind, account_id, "fresh", False)
                return self._without_redis(kind, account_id)
            if fresh:
                return self._compute(kind, account_id, "fresh", True)
            try:
                raw = self.store.client.get(self.store.keys.value(kind, account_id))
                self.redis.ok()
                try:
                    found = usable(raw, self._ttl, self._soft_age, max_age)
                except WindowsExpired:
                    raw = self.store.advance(account_id, clock.now())
                    found = usable_now(raw, self._ttl, self._soft_age, max_age)
                if found is None:
                    self.metrics.record_read(kind, "miss")
                    return self._fill(kind, account_id, max_age)
            except RedisError as error:
                self.redis.failed(error)
                return self._without_redis(kind, account_id)
        except Exception:
            self.metrics.record_read(kind, "error")
            raise
        if found[5]:
            self.metrics.record_read(kind, "stale")
            self._ask_refresh(account_id)
        else:
            self.metrics.record_hit(kind, account_id)
        return found

    def _usable(self, raw: Any, max_age: float | None) -> Found | None:
        """The cached envelope if there is one, younger than the hard TTL and than `max_age`."""
        return usable_now(raw, self._ttl, self._soft_age, max_age)

    def _fill(self, kind: Kind, account_id: Scope, max_age: float | None) -> Found:
        """Single flight: compute the scope if we get its lock, else wait for who has it."""
        deadline = time.monotonic() + self.settings.wait_seconds
        key = self.store.keys.value(kind, account_id)
        return self.flight.run(
            account_id,
            lambda: self._usable(self.store.client.get(key), max_age),
            lambda: self._compute(kind, account_id, "fallback", True, deadline),
            deadline,
        )

    def _compute(
        self,
        kind: Kind,
        account_id: Scope,
        source: Literal["fallback", "fresh"],
        use_redis: bool,
        deadline: float | None = None,
    ) -> Found:
        """Compute the scope from the database; write it through the fence if Redis answers."""
        deadline = deadline or time.monotonic() + self.settings.wait_seconds
        with self.slots.hold(deadline):
            started = time.perf_counter()
            generation = self._ticket() if use_redis else 0
            try:
                result = self.database.compute(account_id, self.settings.max_breakdown, generation)
            except SQLAlchemyError as error:
                self.metrics.record_recompute(source, "error", time.perf_counter() - started)
                raise database_failed(error, self.outages) from error
        outcome: RecomputeOutcome = "error"  # until stored: Redis down or failing
        if generation:
            try:
                result = write_result(self.store, result)
                outcome = result.outcome
                if source == "fallback" and account_id is not None:
                    # A miss: the account is read again (dashcache.reads); not on the hit path.
                    self.store.client.zadd(
                        self.store.keys.reads, read_mark(account_id, clock.now())
                    )
            except RedisError as error:
                self.redis.failed(error)
        duration = time.perf_counter() - started
        return computed(
            result, kind, account_id, source, outcome, duration, self.metrics, self.outages
        )

    def _without_redis(self, kind: Kind, account_id: Scope) -> Found:
        if self.settings.on_redis_down == "error":
            raise redis_down_error()
        return self._compute(kind, account_id, "fallback", False)

    def _ticket(self) -> int:
        """A generation ticket, or 0 when Redis does not answer (the value is then not stored)."""
        try:
            generation = self.store.take_ticket()
        except RedisError as error:
            self.redis.failed(error)
            return 0
        self.redis.ok()
        return generation

    def _ask_refresh(self, account_id: Scope) -> None:
        try:
            self.refresher.request(account_id)
        except RedisError as error:
            self.redis.failed(error)
