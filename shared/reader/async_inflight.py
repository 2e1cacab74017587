"""In-process single flight for the asyncio reader: concurrent coroutines that need the same
computation (a cold key, say) await one task, so a process makes one computation and one wait
per key whatever its number of coroutines (cashews' shape; the cross-process lock is
shared/reader/async_singleflight.py).

The task belongs to its callers: when the last of them is cancelled (its client went away) the
task is cancelled too, and a caller arriving after that starts a new one. Nothing outlives the
callers that wanted it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Hashable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class _Shared(Generic[T]):
    __slots__ = ("callers", "task")

    def __init__(self, task: asyncio.Task[T]) -> None:
        self.task = task
        self.callers = 0


class InFlight:
    """One running task per key; every concurrent caller of `share` awaits it."""

    def __init__(self) -> None:
        self._running: dict[Hashable, _Shared[Any]] = {}

    def __len__(self) -> int:
        """Keys with a task running now."""
        return len(self._running)

    async def share(self, key: Hashable, start: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """The result of the task running for `key`, started with `start()` if none is."""
        shared: _Shared[T] | None = self._running.get(key)
        if shared is None:
            task = asyncio.get_running_loop().create_task(start(), name=f"dashcache-{key}")
            shared = self._running[key] = _Shared(task)
            task.add_done_callback(lambda done: self._finished(key, shared, done))
        shared.callers += 1
        try:
            return await asyncio.shield(shared.task)
        finally:
            shared.callers -= 1
            if shared.callers == 0 and not shared.task.done():
                self._forget(key, shared)
                shared.task.cancel()  # nobody waits for it any more

    async def aclose(self) -> None:
        """Cancel every running task and wait for them."""
        tasks = [shared.task for shared in self._running.values()]
        self._running.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _forget(self, key: Hashable, shared: _Shared[Any]) -> None:
        if self._running.get(key) is shared:
            del self._running[key]

    def _finished(self, key: Hashable, shared: _Shared[Any], task: asyncio.Task[Any]) -> None:
        self._forget(key, shared)
        if not task.cancelled():
            task.exception()  # every caller has it already; mark it as seen
