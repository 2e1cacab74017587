"""What the asyncio reader keeps per event loop, and how it follows the loops that call it.

Connections and asyncio primitives belong to the loop that made them: a `redis.asyncio` pool
reused on another loop fails with "attached to a different loop" or "Event loop is closed". So a
reader keeps one `LoopParts` per loop (its Redis client and pool, scripts, in-flight tasks,
compute slots, breaker probes), made on the first read on that loop; one reader can serve a
module singleton, a `TestClient` whose every request runs on a new loop, two loops in two
threads, and uvicorn's reload.

A loop's parts are released while that loop shuts down: the first use also starts a small
async generator on the loop, and `loop.shutdown_asyncgens()`, which `asyncio.run`,
`asyncio.Runner`, anyio and uvicorn call before closing a loop, closes it, which closes the
parts on their own loop. A loop closed by hand without that step has its parts dropped at the
next first use on another loop or at `aclose()` (their sockets are then the garbage collector's).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Generic, TypeVar

from redis import asyncio as aioredis

from dashcache.config import Settings
from dashcache.keys import KeySchema
from dashcache.logging import get_logger
from dashcache.reader.async_inflight import InFlight
from dashcache.reader.async_redis_health import AsyncRedisHealth
from dashcache.reader.async_singleflight import AsyncSingleFlight
from dashcache.reader.async_slots import AsyncComputeSlots, ComputeThreads
from dashcache.reader.async_store import AsyncRedisStore, make_async_redis

log = get_logger(__name__)

T = TypeVar("T")

OTHER_LOOP_CLOSE_SECONDS = 10.0
"""How long `aclose()` waits for a loop running in another thread to close its parts."""


class LoopParts:
    """One event loop's connections and primitives for one reader."""

    def __init__(
        self,
        store: AsyncRedisStore,
        health: AsyncRedisHealth,
        lock_seconds: float,
        threads: ComputeThreads,
    ) -> None:
        self.store = store
        self.client: aioredis.Redis = store.client
        self.flight = AsyncSingleFlight(store.client, store.keys, lock_seconds, health)
        self.inflight = InFlight()
        self.slots = AsyncComputeSlots(threads)
        self.probes: set[asyncio.Task[None]] = set()

    @classmethod
    def connect(
        cls,
        settings: Settings,
        keys: KeySchema,
        health: AsyncRedisHealth,
        threads: ComputeThreads,
    ) -> LoopParts:
        """Parts with a new client of `settings` (it connects on its first command)."""
        client = make_async_redis(settings.redis_url, settings.redis_timeout_seconds)
        store = AsyncRedisStore(client, keys, settings.ttl_seconds, settings.max_value_bytes)
        return cls(store, health, settings.lock_seconds, threads)

    async def aclose(self) -> None:
        """Cancel this loop's shared reads and probes and wait for them; close its Redis pool."""
        await self.inflight.aclose()
        probes = list(self.probes)
        for probe in probes:
            probe.cancel()
        await asyncio.gather(*probes, return_exceptions=True)
        await self.client.aclose()


class LoopLocal(Generic[T]):
    """One `T` per event loop: made by `make()` on first use on a loop, closed by `close(part)`
    on that loop as it shuts down. Thread-safe.

    `parts` maps each loop to its part; a caller looks its loop up there first (one dict lookup)
    and calls `attach()` only when it is missing.
    """

    def __init__(self, make: Callable[[], T], close: Callable[[T], Awaitable[None]]) -> None:
        self.parts: dict[asyncio.AbstractEventLoop, T] = {}
        self._make = make
        self._close = close
        self._guards: dict[asyncio.AbstractEventLoop, AsyncGenerator[None, None]] = {}
        self._lock = threading.Lock()

    def attach(self) -> T:
        """The running loop's part, made now if it has none (a loop's first use)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            part = self.parts.get(loop)
            if part is not None:
                return part
            self._drop_closed()
            part = self._make()
            guard = self._guard(loop, part)
            # Starting the generator registers it with the running loop's asyncgen hooks, so
            # the loop's shutdown_asyncgens() closes it: it yields at once, nothing is awaited.
            with contextlib.suppress(StopIteration):
                guard.__anext__().send(None)
            self.parts[loop], self._guards[loop] = part, guard
            return part

    async def aclose(self) -> None:
        """Close every loop's part: the running loop's here, a loop running in another thread on
        that loop (waiting up to OTHER_LOOP_CLOSE_SECONDS); a closed loop's is dropped. A loop
        that is neither running nor closed keeps its part until it shuts down."""
        here = asyncio.get_running_loop()
        with self._lock:
            self._drop_closed()
            guards = list(self._guards.items())
        for loop, guard in guards:
            if loop is here:
                await guard.aclose()
            elif loop.is_running():
                try:  # RuntimeError: that loop closed meanwhile (its shutdown closed the part)
                    done = asyncio.run_coroutine_threadsafe(_closed(guard), loop)
                    await asyncio.wait_for(asyncio.wrap_future(done), OTHER_LOOP_CLOSE_SECONDS)
                except (TimeoutError, RuntimeError) as error:
                    log.warning("reader.loop_close_failed", error=f"{type(error).__name__}")

    async def _guard(self, loop: asyncio.AbstractEventLoop, part: T) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            with self._lock:
                if self.parts.get(loop) is part:
                    del self.parts[loop], self._guards[loop]
            try:
                await self._close(part)
            except Exception as error:  # a loop shutting down: log it, never raise into it
                log.warning("reader.loop_close_failed", error=f"{type(error).__name__}: {error}")

    def _drop_closed(self) -> None:
        for loop in [loop for loop in self.parts if loop.is_closed()]:
            del self.parts[loop], self._guards[loop]


async def _closed(guard: AsyncGenerator[None, None]) -> None:
    await guard.aclose()
