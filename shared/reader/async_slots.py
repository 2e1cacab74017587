"""The asyncio reader's compute slots: at most `limit` database computations of a process at once,
each run in a thread of a pool of exactly `limit` threads, so the event loop never waits on the
database.

A slot is held until its thread finishes, not merely until its caller stops waiting: a cancelled
request cannot let a new computation start next to a query still running. A caller waits for a
slot until its deadline, then gets `DashboardUnavailable`.
"""

from __future__ import annotations

import asyncio
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


class AsyncComputeSlots:
    """At most `limit` computations at a time; a caller waits for a slot until its deadline."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._free = asyncio.Semaphore(limit)
        self._pool = ThreadPoolExecutor(limit, thread_name_prefix="dashcache-compute")

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
        slot = Slot(self._pool)
        try:
            yield slot
        finally:
            slot.free(self._free.release)

    def close(self) -> None:
        """Wait for the computations still running, then stop the threads (blocking)."""
        self._pool.shutdown(wait=True, cancel_futures=True)
