"""The asyncio reader's compute slots: at most `limit` database computations at once, each run in
a thread of the reader's pool of exactly `limit` threads, so the event loop never waits on the
database.

The pool (`ComputeThreads`) is the reader's, shared by every event loop that reads through it, so
the process never runs more than `limit` queries at once whatever its number of loops. The slots
in front of it (`AsyncComputeSlots`, an asyncio semaphore) belong to one loop. A slot is held
until its thread finishes, not merely until its caller stops waiting: a cancelled request cannot
let a new computation start next to a query still running. A caller waits for a slot until its
deadline, then gets `DashboardUnavailable`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from dashcache.errors import DashboardUnavailable

T = TypeVar("T")


class Slot:
    """One held slot: runs one blocking call at a time in the pool."""

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self._pool = pool
        self._running: asyncio.Future[Any] | None = None

    async def run(self, call: Callable[..., T], *args: Any) -> T:
        """`call(*args)` in a pool thread; a cancelled caller leaves the thread to finish."""
        running = asyncio.get_running_loop().run_in_executor(self._pool, call, *args)
        self._running = running
        return await asyncio.shield(running)

    def free(self, release: Callable[[], None]) -> None:
        """Call `release` now, or when the thread still running finishes."""
        running = self._running
        if running is None or running.done():
            release()
            return

        def finished(future: asyncio.Future[Any]) -> None:
            if not future.cancelled():
                future.exception()  # its caller is gone: nobody else will look at it
            release()

        running.add_done_callback(finished)


class ComputeThreads:
    """A reader's pool of `limit` threads, made on first use; `close` stops it, and a later use
    makes a new one (thread-safe)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def pool(self) -> ThreadPoolExecutor:
        """The running pool."""
        pool = self._pool
        if pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(
                        self.limit, thread_name_prefix="dashcache-compute"
                    )
                pool = self._pool
        return pool

    def close(self) -> None:
        """Wait for the computations still running, then stop the threads (blocking)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


class AsyncComputeSlots:
    """One event loop's slots in front of the reader's threads: at most `limit` computations at
    a time; a caller waits for a slot until its deadline."""

    def __init__(self, threads: ComputeThreads) -> None:
        self.limit = threads.limit
        self._threads = threads
        self._free = asyncio.Semaphore(threads.limit)

    @asynccontextmanager
    async def hold(self, deadline: float) -> AsyncIterator[Slot]:
        """Hold a slot for the block; raise `DashboardUnavailable` if none frees up in time."""
        try:
            async with asyncio.timeout(max(deadline - time.monotonic(), 0.0)):
                await self._free.acquire()
        except TimeoutError:
            raise DashboardUnavailable(
                f"{self.limit} dashboard computations are already running in this process "
                "(DASHCACHE_COMPUTE_LIMIT) and none finished in time; retry shortly"
            ) from None
        slot = Slot(self._threads.pool())
        try:
            yield slot
        finally:
            slot.free(self._free.release)
