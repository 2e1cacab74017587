"""Single flight across processes: one computation per cold scope; a killed holder is survived."""

from __future__ import annotations

import multiprocessing
from dataclasses import replace
from typing import Any

import redis
from sqlalchemy import Engine, text

from dashcache.config import Settings
from dashcache.keys import KeySchema
from dashcache.reader import DashboardReader
from tests.helpers import NOW, Row, add_categories, add_emails, count_queries, wait_until
from tests.readers import cold_reads, read_once

PROCESSES = 5
THREADS = 10

spawn = multiprocessing.get_context("spawn")


def test_fifty_cold_readers_cause_one_computation(settings: Settings, pg: Engine) -> None:
    """50 readers (5 processes x 10 threads) missing one key at once run one database query."""
    add_categories(pg, ["work", "news"])
    add_emails(pg, [Row(3, 1, True, False, NOW), Row(3, 2, False, True, NOW)])
    start = spawn.Barrier(PROCESSES)
    results: Any = spawn.Queue()
    # The waiters wait for the one computation far longer than it takes on a loaded machine.
    env = replace(settings, wait_seconds=60, lock_seconds=120).to_env()
    processes = [
        spawn.Process(target=cold_reads, args=(env, THREADS, 3, start, results))
        for _ in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    try:
        outcomes = [results.get(timeout=60) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=10)
            process.kill()
    queries = sum(count for count, _, _ in outcomes)
    values = [data for _, datas, _ in outcomes for data in datas]
    sources = [source for _, _, batch in outcomes for source in batch]
    assert queries == 1
    assert len(values) == PROCESSES * THREADS
    assert all(value["total_emails"] == 2 and value["unread_count"] == 1 for value in values)
    assert sources.count("fallback") == 1


def test_reader_killed_holding_the_lock_is_survived(
    settings: Settings, pg: Engine, redis_client: redis.Redis
) -> None:
    """A reader SIGKILLed mid-computation holds the lock only until it expires; then another
    reader takes over and computes the value."""
    add_categories(pg, ["work"])
    add_emails(pg, [Row(4, 1, True, False, NOW)])
    # The holder's blocked query gives up after db_timeout_seconds and releases the lock: 3 s
    # (and a 6 s lock) leave ample time to kill it while it holds the lock.
    settings = replace(settings, lock_seconds=6, db_timeout_seconds=3, wait_seconds=30)
    lock = KeySchema(settings.key_prefix).lock(4)
    with pg.connect() as blocker:
        blocker.execute(text("LOCK TABLE emails IN ACCESS EXCLUSIVE MODE"))
        holder = spawn.Process(target=read_once, args=(settings.to_env(), 4))
        holder.start()
        try:
            wait_until(lambda: redis_client.exists(lock), "the reader to take the lock")
        finally:
            holder.kill()
        holder.join()
        blocker.rollback()
    assert redis_client.exists(lock)
    reader = DashboardReader.from_settings(settings)
    queries = count_queries(reader.engine)
    try:
        value = reader.get_aggregates(account_id=4)
    finally:
        reader.close()
    assert (value.source, value.data["total_emails"]) == ("fallback", 1)
    assert len(queries) == 1
