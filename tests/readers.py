"""Readers for tests: processes started with multiprocessing's spawn, so they share nothing, and a
thread that keeps reading while a fault test breaks things."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import Any

from dashcache.config import Settings
from dashcache.reader import DashboardReader, DashboardValue
from tests.helpers import count_queries


def cold_reads(
    env: dict[str, str], threads: int, account_id: int, start: Barrier, results: Queue[Any]
) -> None:
    """Connect, wait for every process, then read one scope from `threads` threads at once;
    put (statements that read `emails`, values' data, values' sources) on `results`."""
    reader = DashboardReader.from_settings(Settings.from_env(env))
    queries = count_queries(reader.engine)
    reader.store.client.ping()
    together = threading.Barrier(threads)

    def read(_: int) -> tuple[dict[str, Any], str]:
        together.wait()
        value = reader.get_aggregates(account_id=account_id)
        return value.data, value.source

    start.wait()
    with ThreadPoolExecutor(threads) as pool:
        values = list(pool.map(read, range(threads)))
    reader.close()
    results.put((len(queries), [data for data, _ in values], [source for _, source in values]))


def read_once(env: dict[str, str], account_id: int) -> None:
    """Read one scope (the test blocks the database, so this holds the lock until killed)."""
    DashboardReader.from_settings(Settings.from_env(env)).get_aggregates(account_id=account_id)


@dataclass(frozen=True)
class Outcome:
    """One read of a ReadLoop: the phase it started in, how long it took, what it gave."""

    phase: str
    seconds: float
    value: DashboardValue | None
    error: Exception | None


class ReadLoop:
    """Reads over and over in a thread while a fault test runs, recording every outcome with the
    phase the test had set when the read started. Use as a context manager."""

    def __init__(self, read: Callable[[], DashboardValue]) -> None:
        self.read = read
        self.phase = "before"
        self.outcomes: list[Outcome] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ReadLoop:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def during(self, phase: str) -> list[Outcome]:
        """The outcomes of reads started in `phase`."""
        return [outcome for outcome in self.outcomes if outcome.phase == phase]

    def _run(self) -> None:
        while not self._stop.is_set():
            phase, started = self.phase, time.monotonic()
            value, error = None, None
            try:
                value = self.read()
            except Exception as raised:  # recorded: the test asserts which ones may happen
                error = raised
            self.outcomes.append(Outcome(phase, time.monotonic() - started, value, error))
            self._stop.wait(0.05)  # pacing only


def read_in_one_minute(env: dict[str, str], scopes: list[int | None], results: Queue[Any]) -> None:
    """Read the aggregates of `scopes` within one minute of the clock; put (the moment the reads
    began, [(scope, data, generation, source), ...]) on `results` (retried across a minute
    start, so one moment is the truth of every read)."""
    from dashcache import clock
    from dashcache.windows import floor_minute

    reader = DashboardReader.from_settings(Settings.from_env(env))
    while True:
        began = clock.now()
        values = [(scope, reader.get_aggregates(account_id=scope)) for scope in scopes]
        if floor_minute(clock.now()) == floor_minute(began):
            break
    reader.close()
    results.put((began, [(s, v.data, v.generation, v.source) for s, v in values]))
