"""One asyncio reader, many event loops: loops in sequence (`asyncio.run` twice) and two loops in
two threads at once both get answers; a loop's Redis connections are made on its first read and
closed as it shuts down (pytest turns a ResourceWarning or an "Event loop is closed" error into a
failure); `aclose()` closes the connections of a loop running in another thread too."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from sqlalchemy import Engine

from dashcache.async_reader import AsyncDashboardReader
from dashcache.config import Settings
from tests.helpers import NOW, Row, add_categories, add_emails, count_queries, wait_until

TRUTH = {"total_emails": 3, "unread_count": 2}


@pytest.fixture
def reader(settings: Settings, pg: Engine) -> Iterator[AsyncDashboardReader]:
    """A reader made outside any loop (a module singleton's way), over three emails."""
    add_categories(pg, ["work", "news"])
    add_emails(
        pg,
        [Row(5, 1, True, False, NOW), Row(5, 2, True, True, NOW), Row(5, 2, False, False, NOW)],
    )
    made = AsyncDashboardReader.from_settings(settings)
    yield made
    asyncio.run(made.aclose())
    gc.collect()  # a connection left open would warn here, inside the test


def counted(data: dict[str, Any]) -> dict[str, Any]:
    return {key: data[key] for key in TRUTH}


def closed(redis_client: redis.Redis, client_id: int) -> bool:
    """Whether the Redis connection with this id is gone from the server."""
    return not redis_client.client_list(client_id=[client_id])


def test_loops_in_sequence_each_get_their_own_connections(
    reader: AsyncDashboardReader, redis_client: redis.Redis
) -> None:
    """A miss on the first loop, a hit on the second; each loop's connection closes with it."""

    async def read() -> tuple[str, dict[str, Any], int, int]:
        value = await reader.get_aggregates(account_id=5)
        return (
            value.source,
            counted(value.data),
            await reader.client.client_id(),
            len(reader.loops.parts),
        )

    first = asyncio.run(read())
    assert reader.loops.parts == {}, "the first loop's parts outlived it"
    second = asyncio.run(read())
    assert reader.loops.parts == {}, "the second loop's parts outlived it"
    assert (first[0], first[1], first[3]) == ("fallback", TRUTH, 1)
    assert (second[0], second[1], second[3]) == ("cache", TRUTH, 1)
    assert first[2] != second[2]
    for client_id in (first[2], second[2]):
        wait_until(lambda c=client_id: closed(redis_client, c), f"connection {client_id} closed")
    gc.collect()


def test_two_loops_in_two_threads_at_once(
    reader: AsyncDashboardReader, redis_client: redis.Redis
) -> None:
    """Two loops miss the same cold key together: both answer, one computation between them
    (the Redis single flight spans loops), two sets of parts while both run, none after."""
    queries = count_queries(reader.engine)
    together = threading.Barrier(2, timeout=30)
    results: list[Any] = []

    async def read() -> None:
        await asyncio.to_thread(together.wait)
        value = await reader.get_aggregates(account_id=5)
        client_id = await reader.client.client_id()
        await asyncio.to_thread(together.wait)  # both loops have read
        parts = len(reader.loops.parts)
        await asyncio.to_thread(together.wait)  # both have counted
        results.append((value.source, counted(value.data), client_id, parts))

    def run() -> None:
        try:
            asyncio.run(read())
        except Exception as error:  # recorded: the test names it
            results.append(error)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [type(result) for result in results] == [tuple, tuple], results
    assert sorted(source for source, *_ in results) == ["cache", "fallback"]
    assert [data for _, data, _, _ in results] == [TRUTH, TRUTH]
    assert [parts for *_, parts in results] == [2, 2]
    assert len(queries) == 1
    assert reader.loops.parts == {}
    for _, _, client_id, _ in results:
        wait_until(lambda c=client_id: closed(redis_client, c), f"connection {client_id} closed")


def test_aclose_closes_a_loop_running_in_another_thread(
    reader: AsyncDashboardReader, redis_client: redis.Redis
) -> None:
    """`aclose()` on one loop closes the connections of a loop still running in another thread
    (on that loop); the reader serves again afterwards."""
    opened, leave = threading.Event(), threading.Event()
    seen: list[Any] = []

    async def hold() -> None:
        seen.append(await reader.client.client_id())
        opened.set()
        while not leave.is_set():
            await asyncio.sleep(0.01)

    thread = threading.Thread(target=lambda: asyncio.run(hold()))
    thread.start()
    try:
        assert opened.wait(30), "the other loop never read"
        asyncio.run(reader.aclose())
        assert reader.loops.parts == {}
        wait_until(lambda: closed(redis_client, seen[0]), "the other loop's connection closed")
    finally:
        leave.set()
        thread.join(60)
    assert asyncio.run(reader.get_aggregates(account_id=5)).data["total_emails"] == 3
