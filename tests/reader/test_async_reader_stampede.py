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
from tests.helpers import NOW, Row, add_categories, add_emails, count_queries

PROCESSES = 5
COROUTINES = 10

spawn = multiprocessing.get_context("spawn")


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
    outcomes = run_cold_readers(settings, [async_readers.cold_reads] * PROCESSES, 3)
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
    outcomes = run_cold_readers(settings, targets, 6)
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
    keys = KeySchema(settings.key_prefix)
    other = SingleFlight(redis_client, keys, lock_seconds=10)
    lease = other.try_acquire(7)
    assert lease is not None
    channel = keys.filled(7)

    async def body(reader: AsyncDashboardReader) -> tuple[list[int], list[Any], int]:
        queries = count_queries(reader.engine)
        reads = [asyncio.create_task(reader.get_aggregates(account_id=7)) for _ in range(50)]
        subscribers = []
        for _ in range(10):
            await asyncio.sleep(0.05)
            subscribers.append(dict(redis_client.pubsub_numsub(channel))[channel.encode()])
        other.release(lease)
        values = await asyncio.gather(*reads)
        return subscribers, values, len(queries)

    subscribers, values, queries = with_reader(settings, body)
    assert subscribers[-5:] == [1] * 5
    assert queries == 1
    assert all(value.data["total_emails"] == 1 for value in values)


def test_cancelled_reads_leave_no_lock_task_or_slot(
    settings: Settings, pg: Engine, redis_client: redis.Redis
) -> None:
    """Reads cancelled while their computation waits on the database release the lock at once
    (not at its expiry), leave no task behind, and the slot comes back when the query ends."""
    add_categories(pg, ["work"])
    add_emails(pg, [Row(8, 1, True, False, NOW)])
    settings = replace(settings, compute_limit=1, lock_seconds=30)
    lock = KeySchema(settings.key_prefix).lock(8)

    async def body(reader: AsyncDashboardReader) -> tuple[float, int, bool, str]:
        with pg.connect() as blocker:
            blocker.execute(text("LOCK TABLE emails IN ACCESS EXCLUSIVE MODE"))
            reads = [asyncio.create_task(reader.get_aggregates(account_id=8)) for _ in range(10)]
            while not redis_client.exists(lock):
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.2)
            for read in reads:
                read.cancel()
            await asyncio.gather(*reads, return_exceptions=True)
            cancelled = time.monotonic()
            while redis_client.exists(lock) and time.monotonic() - cancelled < 20:
                await asyncio.sleep(0.02)
            released = time.monotonic() - cancelled
            leftover = len(reader.inflight)
            while len(asyncio.all_tasks()) > 1 and time.monotonic() - cancelled < 20:
                await asyncio.sleep(0.01)  # the shared task finishing its release
            alone = asyncio.all_tasks() == {asyncio.current_task()}
            blocker.rollback()
        after = await reader.get_aggregates(account_id=8)  # needs the one slot back
        return released, leftover, alone, after.source

    released, leftover, alone, source = with_reader(settings, body)
    assert released < 5  # the lock would have lasted 30 s
    assert (leftover, alone) == (0, True)
    assert source in ("fallback", "cache")


def test_reader_killed_holding_the_lock_is_survived(
    settings: Settings, pg: Engine, redis_client: redis.Redis
) -> None:
    """An asyncio reader SIGKILLed mid-computation holds the lock only until it expires; then
    another reader takes over and computes the value."""
    add_categories(pg, ["work"])
    add_emails(pg, [Row(4, 1, True, False, NOW)])
    settings = replace(settings, lock_seconds=3, db_timeout_seconds=1.5, wait_seconds=15)
    lock = KeySchema(settings.key_prefix).lock(4)
    with pg.connect() as blocker:
        blocker.execute(text("LOCK TABLE emails IN ACCESS EXCLUSIVE MODE"))
        holder = spawn.Process(target=async_readers.read_once, args=(settings.to_env(), 4))
        holder.start()
        deadline = time.monotonic() + 30
        while not redis_client.exists(lock) and time.monotonic() < deadline:
            time.sleep(0.02)
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
