"""Asyncio single flight: one computation per cold scope across processes and coroutines (sync
readers included), one wait per process, a killed or cancelled holder survived."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from dataclasses import replace
from typing import Any

import redis
from sqlalchemy import Engine, text

from dashcache.async_reader import AsyncDashboardReader
from dashcache.config import Settings
from dashcache.keys import KeySchema
from dashcache.reader.singleflight import SingleFlight
from tests import async_readers, readers
from tests.async_readers import with_reader
from tests.helpers import (
    NOW,
    Row,
    add_categories,
    add_emails,
    count_queries,
    lock_waiters,
    subscribers,
    wait_until,
    wait_until_async,
)

PROCESSES = 5
COROUTINES = 10

spawn = multiprocessing.get_context("spawn")
WAIT = {"wait_seconds": 60.0, "lock_seconds": 120.0}
"""Waiters wait for the one computation far longer than it takes on a loaded machine."""


def run_cold_readers(settings: Settings, targets: list[Any], account_id: int) -> list[Any]:
    """Start one process per target (each reads `account_id` cold, all at once); their outcomes."""
    start = spawn.Barrier(len(targets))
    results: Any = spawn.Queue()
    env = settings.to_env()
    processes = [
        spawn.Process(target=target, args=(env, COROUTINES, account_id, start, results))
        for target in targets
    ]
    for process in processes:
        process.start()
    try:
        return [results.get(timeout=60) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=10)
            process.kill()


def test_fifty_cold_coroutines_cause_one_computation(settings: Settings, pg: Engine) -> None:
    """50 coroutines (5 processes x 10) missing one key at once run one database query; the
    computing process's coroutines share its value, the others' share one wait."""
    add_categories(pg, ["work", "news"])
    add_emails(pg, [Row(3, 1, True, False, NOW), Row(3, 2, False, True, NOW)])
    outcomes = run_cold_readers(
        replace(settings, **WAIT), [async_readers.cold_reads] * PROCESSES, 3
    )
    values = [data for _, datas, _ in outcomes for data in datas]
    sources = [source for _, _, batch in outcomes for source in batch]
    assert sum(count for count, _, _ in outcomes) == 1
    assert len(values) == PROCESSES * COROUTINES
    assert all(value["total_emails"] == 2 and value["unread_count"] == 1 for value in values)
    assert sources.count("fallback") == COROUTINES


def test_sync_and_async_readers_coalesce(settings: Settings, pg: Engine) -> None:
    """Sync readers (threads) and asyncio readers (coroutines) of one deployment, missing one
    key at once, share one computation: the same lock and channel."""
    add_categories(pg, ["work"])
    add_emails(pg, [Row(6, 1, True, False, NOW)])
    targets = [readers.cold_reads, async_readers.cold_reads] * 2
    outcomes = run_cold_readers(replace(settings, **WAIT), targets, 6)
    values = [data for _, datas, _ in outcomes for data in datas]
    assert sum(count for count, _, _ in outcomes) == 1
    assert len(values) == len(targets) * COROUTINES
    assert all(value["total_emails"] == 1 for value in values)


def test_one_wait_per_process_not_one_subscription_each(
    settings: Settings, pg: Engine, redis_client: redis.Redis
) -> None:
    """While another reader holds a scope's lock, 50 coroutines of a process missing it hold
    one subscription between them; when the lock frees, one of them computes."""
    add_categories(pg, ["work"])
    add_emails(pg, [Row(7, 1, True, False, NOW)])
    settings = replace(settings, **WAIT)
    keys = KeySchema(settings.key_prefix)
    other = SingleFlight(redis_client, keys, lock_seconds=60)
    lease = other.try_acquire(7)
    assert lease is not None
    channel = keys.filled(7)

    async def body(reader: AsyncDashboardReader) -> tuple[list[int], list[Any], int]:
        queries = count_queries(reader.engine)
        reads = [asyncio.create_task(reader.get_aggregates(account_id=7)) for _ in range(50)]

        async def subscribed() -> int:
            return subscribers(redis_client, channel)

        await wait_until_async(subscribed, "the process's wait to subscribe")
        counts = []
        for _ in range(5):  # while the coroutines go on waiting, still one subscription
            await asyncio.sleep(0.05)
            counts.append(subscribers(redis_client, channel))
        other.release(lease)
        values = await asyncio.gather(*reads)
        return counts, values, len(queries)

    counts, values, queries = with_reader(settings, body)
    assert counts == [1] * 5
    assert queries == 1
    assert all(value.data["total_emails"] == 1 for value in values)


def test_cancelled_reads_leave_no_lock_task_or_slot(
    settings: Settings, pg: Engine, redis_client: redis.Redis
) -> None:
    """Reads cancelled while their computation waits on the database release the lock at once
    (not at its expiry), leave no task behind, and the slot comes back when the query ends."""
    add_categories(pg, ["work"])
    add_emails(pg, [Row(8, 1, True, False, NOW)])
    # The blocked query would give up after db_timeout_seconds: far later than the test cancels.
    settings = replace(settings, compute_limit=1, lock_seconds=60, db_timeout_seconds=30)
    lock = KeySchema(settings.key_prefix).lock(8)

    async def body(reader: AsyncDashboardReader) -> tuple[float, int, str]:
        async def lock_held() -> bool:
            return bool(redis_client.exists(lock))

        async def lock_gone() -> bool:
            return not redis_client.exists(lock)

        async def only_this_task() -> bool:  # the shared task finishing its release
            return asyncio.all_tasks() == {asyncio.current_task()}

        async def query_blocked() -> int:
            return await asyncio.to_thread(lock_waiters, pg)

        with pg.connect() as blocker:
            blocker.execute(text("LOCK TABLE emails IN ACCESS EXCLUSIVE MODE"))
            reads = [asyncio.create_task(reader.get_aggregates(account_id=8)) for _ in range(10)]
            await wait_until_async(lock_held, "a read to take the lock")
            await wait_until_async(query_blocked, "its query to wait on the table lock")
            for read in reads:
                read.cancel()
            await asyncio.gather(*reads, return_exceptions=True)
            cancelled = time.monotonic()
            await wait_until_async(lock_gone, "the lock released (it expires after 60 s)", 40)
            released = time.monotonic() - cancelled
            leftover = len(reader.inflight)
            await wait_until_async(only_this_task, "no task left", seen=asyncio.all_tasks)
            blocker.rollback()
        after = await reader.get_aggregates(account_id=8)  # needs the one slot back
        return released, leftover, after.source

    released, leftover, source = with_reader(settings, body)
    assert released < 10  # at once, not at the lock's 60 s expiry
    assert leftover == 0
    assert source in ("fallback", "cache")


def test_reader_killed_holding_the_lock_is_survived(
    settings: Settings, pg: Engine, redis_client: redis.Redis
) -> None:
    """An asyncio reader SIGKILLed mid-computation holds the lock only until it expires; then
    another reader takes over and computes the value."""
    add_categories(pg, ["work"])
    add_emails(pg, [Row(4, 1, True, False, NOW)])
    # The holder's blocked query gives up after db_timeout_seconds and releases the lock: 3 s
    # (and a 6 s lock) leave ample time to kill it while it holds the lock, as in the sync twin.
    settings = replace(settings, lock_seconds=6, db_timeout_seconds=3, wait_seconds=30)
    lock = KeySchema(settings.key_prefix).lock(4)
    with pg.connect() as blocker:
        blocker.execute(text("LOCK TABLE emails IN ACCESS EXCLUSIVE MODE"))
        holder = spawn.Process(target=async_readers.read_once, args=(settings.to_env(), 4))
        holder.start()
        try:
            wait_until(lambda: redis_client.exists(lock), "the reader to take the lock")
        finally:
            holder.kill()
        holder.join()
        blocker.rollback()
    assert redis_client.exists(lock)

    async def body(reader: AsyncDashboardReader) -> tuple[Any, int]:
        queries = count_queries(reader.engine)
        value = await reader.get_aggregates(account_id=4)
        return value, len(queries)

    value, queries = with_reader(settings, body)
    assert (value.source, value.data["total_emails"]) == ("fallback", 1)
    assert queries == 1
