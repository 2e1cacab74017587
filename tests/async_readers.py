"""Asyncio readers for tests: run a coroutine with a reader, processes whose coroutines read a
cold key at once, and a task that keeps reading while a fault test breaks things."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import Any, TypeVar

from dashcache.async_reader import AsyncDashboardReader
from dashcache.config import Settings
from dashcache.reader import DashboardValue
from tests.helpers import count_queries
from tests.readers import Outcome

T = TypeVar("T")


def with_reader(settings: Settings, body: Callable[[AsyncDashboardReader], Awaitable[T]]) -> T:
    """Run `body(reader)` on a new event loop with a reader of `settings`, closed afterwards."""

    async def main() -> T:
        async with AsyncDashboardReader.from_settings(settings) as reader:
            return await body(reader)

    return asyncio.run(main())


def cold_reads(
    env: dict[str, str], coroutines: int, account_id: int, start: Barrier, results: Queue[Any]
) -> None:
    """Connect, wait for every process, then read one scope from `coroutines` coroutines at once;
    put (statements that read `emails`, values' data, values' sources) on `results`."""

    async def main() -> tuple[int, list[Any], list[str]]:
        async with AsyncDashboardReader.from_settings(Settings.from_env(env)) as reader:
            queries = count_queries(reader.engine)
            await reader.client.ping()
            await asyncio.to_thread(start.wait)
            values = await asyncio.gather(
                *(reader.get_aggregates(account_id=account_id) for _ in range(coroutines))
            )
            return len(queries), [v.data for v in values], [v.source for v in values]

    results.put(asyncio.run(main()))


def read_once(env: dict[str, str], account_id: int) -> None:
    """Read one scope (the test blocks the database, so this holds the lock until killed)."""

    async def main() -> None:
        async with AsyncDashboardReader.from_settings(Settings.from_env(env)) as reader:
            await reader.get_aggregates(account_id=account_id)

    asyncio.run(main())


class AsyncReadLoop:
    """Reads over and over in a task while a fault test runs, recording every outcome with the
    phase the test had set when the read started. Use with `async with`."""

    def __init__(self, read: Callable[[], Awaitable[DashboardValue]]) -> None:
        self.read = read
        self.phase = "before"
        self.outcomes: list[Outcome] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> AsyncReadLoop:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    def during(self, phase: str) -> list[Outcome]:
        """The outcomes of reads started in `phase`."""
        return [outcome for outcome in self.outcomes if outcome.phase == phase]

    async def _run(self) -> None:
        while True:
            phase, started = self.phase, time.monotonic()
            value, error = None, None
            try:
                value = await self.read()
            except Exception as raised:  # recorded: the test asserts which ones may happen
                error = raised
            self.outcomes.append(Outcome(phase, time.monotonic() - started, value, error))
            await asyncio.sleep(0.05)  # pacing only
