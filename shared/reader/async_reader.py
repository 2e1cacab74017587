"""The reader for asyncio web processes (FastAPI on uvicorn, say): Redis first, the database only
when needed, and the event loop never waits on either.

    reader = AsyncDashboardReader.from_env()          # at import, in a lifespan, a cached factory
    v = await reader.get_aggregates(account_id=None)  # the same DashboardValue as the sync reader
    b = await reader.get_category_breakdown(limit=10, account_id=42, max_age=30)
    await reader.aclose()                             # or: async with AsyncDashboardReader...

The same settings, errors, metrics and guarantees as `dashcache.reader.DashboardReader` (see its
docstring), with the pure rules shared (shared/reader/rules.py), and these asyncio parts:

- Any event loop: each loop that reads gets its own Redis pool, in-flight tasks, slots and
  probes on its first read, released as that loop shuts down (async_loops.py); a hit looks its
  loop up in a dict. Nothing connects at construction, the database included.
- Redis through `redis.asyncio`; a hit is one GET and a parse.
- A miss: one task per key per loop (async_inflight.py) runs the single flight of
  async_singleflight.py (the sync reader's lock and channel, so both kinds of reader, and
  several loops, coalesce), so concurrent coroutines share one computation and one wait.
- The database is only used in the reader's pool of DASHCACHE_COMPUTE_LIMIT threads
  (async_slots.py), shared by every loop; the mapping is checked there at first use.
- A cancelled read (client gone) cancels the shared task once no coroutine waits for it; the lock
  is released (`abandoned` wakes the waiters), the slot is freed when its query finishes.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Literal

from redis import RedisError
from redis import asyncio as aioredis
from sqlalchemy.exc import SQLAlchemyError

from dashcache import clock
from dashcache.config import Settings
from dashcache.keys import KeySchema, Kind, Scope, check_read_options
from dashcache.metrics import Metrics, RecomputeOutcome, metrics_for
from dashcache.reader.async_inflight import InFlight
from dashcache.reader.async_loops import LoopLocal, LoopParts
from dashcache.reader.async_redis_health import AsyncRedisHealth
from dashcache.reader.async_refresh import AsyncRefreshRequester
from dashcache.reader.async_slots import ComputeThreads
from dashcache.reader.async_store import AsyncRedisStore
from dashcache.reader.breaker import CircuitBreaker
from dashcache.reader.database import ReaderDatabase
from dashcache.reader.rules import (
    LOG_INTERVAL_SECONDS,
    DashboardValue,
    Found,
    breakdown_value,
    check_limit,
    check_scope,
    computed,
    database_failed,
    redis_down_error,
    usable,
    usable_now,
)
from dashcache.reader.throttle import ThrottledLog
from dashcache.reads import read_mark
from dashcache.windows import WindowsExpired


class AsyncDashboardReader:
    """Reads dashboard values for one deployment (one key prefix) on whichever event loop calls
    it: each loop gets its own Redis pool and asyncio primitives (async_loops.py)."""

    def __init__(
        self,
        settings: Settings,
        database: ReaderDatabase,
        metrics: Metrics,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.settings = settings
        self.keys = KeySchema(settings.key_prefix)
        self.database = database
        self.engine = database.engine
        self._single_tenant = database.single_tenant
        self.metrics = metrics
        self.outages = ThrottledLog(__name__, LOG_INTERVAL_SECONDS)
        breaker = breaker or CircuitBreaker(
            settings.breaker_failures, settings.breaker_reset_seconds
        )
        self.redis = AsyncRedisHealth(breaker, self.outages, settings.on_redis_down)
        self.threads = ComputeThreads(settings.compute_limit)
        self.refresher = AsyncRefreshRequester(settings, self.keys)
        self.loops: LoopLocal[LoopParts] = LoopLocal(
            lambda: LoopParts.connect(settings, self.keys, self.redis, self.threads),
            LoopParts.aclose,
        )
        self._parts = self.loops.parts
        self._ttl = settings.ttl_seconds
        self._soft_age = settings.soft_age

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AsyncDashboardReader:
        """A reader configured from the environment (see README, Configuration). Connects to
        nothing, so it can be built at import time, in a lifespan or in a cached factory."""
        return cls.from_settings(Settings.from_env(env))

    @classmethod
    def from_settings(
        cls, settings: Settings, breaker: CircuitBreaker | None = None
    ) -> AsyncDashboardReader:
        """A reader with its own Redis clients (one per event loop) and database engine, all
        with short timeouts. Nothing connects here: a schema mapping is checked against the
        database when a read first needs it (`dashcache.reader.database.ReaderDatabase`)."""
        return cls(settings, ReaderDatabase.from_settings(settings), metrics_for(settings), breaker)

    @property
    def parts(self) -> LoopParts:
        """The running event loop's client, store, single flight, in-flight tasks and slots."""
        return self._parts.get(asyncio.get_running_loop()) or self.loops.attach()

    @property
    def client(self) -> aioredis.Redis:
        """The running event loop's Redis client."""
        return self.parts.client

    @property
    def store(self) -> AsyncRedisStore:
        """The running event loop's store."""
        return self.parts.store

    @property
    def inflight(self) -> InFlight:
        """The running event loop's shared reads."""
        return self.parts.inflight

    async def get_aggregates(
        self, account_id: Scope = None, *, fresh: bool = False, max_age: float | None = None
    ) -> DashboardValue:
        """Totals, unread, auto-labeled, categories and weekly growth of a scope.

        `fresh=True` computes from the database now; `max_age` (seconds) treats an older cached
        value as missing.
        """
        account_id = check_scope(account_id, self._single_tenant)
        return DashboardValue(*await self._read(Kind.AGGREGATES, account_id, fresh, max_age))

    async def get_category_breakdown(
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
        return breakdown_value(await self._read(Kind.BREAKDOWN, account_id, fresh, max_age), limit)

    async def aclose(self) -> None:
        """Cancel shared reads and probes still running, finish refresh requests in flight and
        the computations' threads; release Redis, broker and database connections, of every
        loop (`LoopLocal.aclose`). The reader stays usable: a later read connects again."""
        await self.loops.aclose()
        await asyncio.to_thread(self.threads.close)
        await asyncio.to_thread(self.refresher.close)
        await asyncio.to_thread(self.database.dispose)

    async def __aenter__(self) -> AsyncDashboardReader:
        return self

    async def __aexit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _read(
        self, kind: Kind, account_id: Scope, fresh: bool, max_age: float | None
    ) -> Found:
        if fresh is not False or max_age is not None:
            check_read_options(fresh, max_age)
        parts = self._parts.get(asyncio.get_running_loop()) or self.loops.attach()
        try:
            if not self.redis.up:
                self.redis.probe_if_due(parts.client, parts.probes)
                if fresh:
                    return await self._compute(parts, kind, account_id, "fresh", False)
                return await self._without_redis(parts, kind, account_id)
            if fresh:
                return await self._compute(parts, kind, account_id, "fresh", True)
            try:
                raw = await parts.client.get(self.keys.value(kind, account_id))
            except RedisError as error:
                self.redis.failed(error)
                return await self._without_redis(parts, kind, account_id)
            self.redis.ok()
            try:
                found = usable(raw, self._ttl, self._soft_age, max_age)
            except WindowsExpired:
                found = await self._advanced(parts, account_id, max_age)
            if found is None:
                self.metrics.record_read(kind, "miss")
                return await self._fill(parts, kind, account_id, max_age)
        except Exception:
            self.metrics.record_read(kind, "error")
            raise
        if found[5]:
            self.metrics.record_read(kind, "stale")
            await self._ask_refresh(parts, account_id)
        else:
            self.metrics.record_hit(kind, account_id)
        return found

    async def _advanced(
        self, parts: LoopParts, account_id: Scope, max_age: float | None
    ) -> Found | None:
        """The aggregates value advanced in Redis to now (shared/advance.py); None: recount.
        Redis failing here: None too, and the miss path finds out."""
        try:
            raw = await parts.store.advance(account_id, clock.now())
        except RedisError as error:
            self.redis.failed(error)
            return None
        return usable_now(raw, self._ttl, self._soft_age, max_age)

    async def _fill(
        self, parts: LoopParts, kind: Kind, account_id: Scope, max_age: float | None
    ) -> Found:
        """One task per key and `max_age` in this loop; each caller gets its own data."""
        found = await parts.inflight.share(
            (kind, account_id, max_age),
            lambda: self._fill_across(parts, kind, account_id, max_age),
        )
        return (copy.deepcopy(found[0]), *found[1:])

    async def _fill_across(
        self, parts: LoopParts, kind: Kind, account_id: Scope, max_age: float | None
    ) -> Found:
        """Single flight across processes; Redis failing on the way: computed without it."""
        deadline = time.monotonic() + self.settings.wait_seconds
        key = self.keys.value(kind, account_id)

        async def fetch() -> Found | None:
            return usable_now(await parts.client.get(key), self._ttl, self._soft_age, max_age)

        try:
            return await parts.flight.run(
                account_id,
                fetch,
                lambda: self._compute(parts, kind, account_id, "fallback", True, deadline),
                deadline,
            )
        except RedisError as error:
            self.redis.failed(error)
            return await self._without_redis_once(parts, kind, account_id)

    async def _without_redis(self, parts: LoopParts, kind: Kind, account_id: Scope) -> Found:
        """Computed from the database, once per key in this loop for concurrent callers."""
        if self.settings.on_redis_down == "error":
            raise redis_down_error()
        found = await parts.inflight.share(
            ("without-redis", kind, account_id),
            lambda: self._without_redis_once(parts, kind, account_id),
        )
        return (copy.deepcopy(found[0]), *found[1:])

    async def _without_redis_once(self, parts: LoopParts, kind: Kind, account_id: Scope) -> Found:
        if self.settings.on_redis_down == "error":
            raise redis_down_error()
        return await self._compute(parts, kind, account_id, "fallback", False)

    async def _compute(
        self,
        parts: LoopParts,
        kind: Kind,
        account_id: Scope,
        source: Literal["fallback", "fresh"],
        use_redis: bool,
        deadline: float | None = None,
    ) -> Found:
        """Compute the scope in a pool thread; write it through the fence if Redis answers."""
        deadline = deadline or time.monotonic() + self.settings.wait_seconds
        async with parts.slots.hold(deadline) as slot:
            started = time.perf_counter()
            generation = await self._ticket(parts) if use_redis else 0
            try:
                result = await slot.run(
                    self.database.compute, account_id, self.settings.max_breakdown, generation
                )
            except SQLAlchemyError as error:
                self.metrics.record_recompute(source, "error", time.perf_counter() - started)
                raise database_failed(error, self.outages) from error
        outcome: RecomputeOutcome = "error"  # until stored: Redis down or failing
        if generation:
            try:
                result = await parts.store.write_result(result)
                outcome = result.outcome
                if source == "fallback" and account_id is not None:
                    # A miss: the account is read again (dashcache.reads); not on the hit path.
                    mark = read_mark(account_id, clock.now())
                    await parts.client.zadd(self.keys.reads, mark)
            except RedisError as error:
                self.redis.failed(error)
        duration = time.perf_counter() - started
        return computed(
            result, kind, account_id, source, outcome, duration, self.metrics, self.outages
        )

    async def _ticket(self, parts: LoopParts) -> int:
        """A generation ticket, or 0 when Redis does not answer (the value is then not stored)."""
        try:
            generation = await parts.store.take_ticket()
        except RedisError as error:
            self.redis.failed(error)
            return 0
        self.redis.ok()
        return generation

    async def _ask_refresh(self, parts: LoopParts, account_id: Scope) -> None:
        try:
            await self.refresher.request(parts.client, account_id)
        except RedisError as error:
            self.redis.failed(error)
