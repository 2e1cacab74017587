"""Reader processes for tests: started with multiprocessing's spawn, so they share nothing."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import Any

from shared.config import Settings
from shared.reader import DashboardReader
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
