"""The asyncio reader when the database or Redis really fails: a closed port, a paused, hung or
stopped Redis (twin of tests/test_reader_faults.py)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import Engine

from dashcache.async_reader import AsyncDashboardReader
from dashcache.config import Settings
from dashcache.errors import CacheUnavailable, DashboardUnavailable
from dashcache.keys import KeySchema, Kind
from dashcache.reader import DashboardValue
from dashcache.redis_server import RedisServer, SilentPort, free_port
from dashcache.store import RedisStore, make_redis
from tests.async_readers import AsyncReadLoop, with_reader
from tests.helpers import NOW, Row, add_categories, add_emails, put_value, wait_until_async


@pytest.fixture
def data(pg: Engine) -> None:
    add_categories(pg, ["work"])
    add_emails(pg, [Row(1, 1, True, False, NOW), Row(1, 1, False, False, NOW)])


TIMEOUT = 2.0
"""The Redis timeout of the hang tests: far above what a read from the database takes, even on
a loaded machine, so a read that waited on Redis is told apart by its duration."""
WAITED = 0.9 * TIMEOUT


def events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry["event"] == name]


async def read_until(reader: AsyncDashboardReader, source: str) -> DashboardValue:
    """Read scope 1 until a value comes from `source` (a reader recovers on its own)."""
    seen: list[object] = []

    async def read() -> DashboardValue | None:
        try:
            value = await reader.get_aggregates(account_id=1)
        except CacheUnavailable as error:
            seen[:] = [error]
            return None
        seen[:] = [value]
        return value if value.source == source else None

    found: DashboardValue = await wait_until_async(read, f"a read from {source}", seen=lambda: seen)
    return found


def test_database_down_serves_cache_and_fails_misses(
    settings: Settings, logs: list[dict[str, Any]]
) -> None:
    """With the database unreachable, cached values (even stale) are served until the hard TTL;
    a miss raises DashboardUnavailable, and the outage is logged once."""
    down = replace(
        settings, database_url=f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/x"
    )
    store = RedisStore(
        make_redis(settings.redis_url, 1.0), KeySchema(settings.key_prefix), settings.ttl_seconds
    )
    put_value(store, Kind.AGGREGATES, 1, {"total_emails": 1}, age=0)
    put_value(store, Kind.AGGREGATES, 2, {"total_emails": 2}, age=settings.soft_age + 1)
    put_value(store, Kind.AGGREGATES, 3, {"total_emails": 3}, age=settings.ttl_seconds)
    store.client.close()

    async def body(reader: AsyncDashboardReader) -> tuple[DashboardValue, DashboardValue]:
        current = await reader.get_aggregates(account_id=1)
        stale = await reader.get_aggregates(account_id=2)
        for missing in (3, 4):
            with pytest.raises(DashboardUnavailable, match="database failed"):
                await reader.get_aggregates(account_id=missing)
        return current, stale

    current, stale = with_reader(down, body)
    assert (current.source, current.stale, current.data) == ("cache", False, {"total_emails": 1})
    assert (stale.source, stale.stale, stale.data) == ("cache", True, {"total_emails": 2})
    assert len(events(logs, "reader.database_failed")) == 1


@pytest.mark.usefixtures("data")
def test_paused_redis_answers_from_database_then_recovers(
    settings: Settings, own_redis: RedisServer, logs: list[dict[str, Any]]
) -> None:
    """A Redis that hangs opens the breaker: values come from the database, at most
    `breaker_failures` reads wait on the Redis timeout, the outage is logged once, and reads
    come from the cache again once Redis answers."""
    paused = replace(
        settings,
        redis_url=own_redis.url,
        redis_timeout_seconds=TIMEOUT,
        breaker_failures=2,
        breaker_reset_seconds=0.3,
    )

    async def body(reader: AsyncDashboardReader) -> tuple[AsyncReadLoop, DashboardValue]:
        assert (await reader.get_aggregates(account_id=1)).source == "fallback"
        async with AsyncReadLoop(lambda: reader.get_aggregates(account_id=1)) as loop:

            async def eight_reads() -> bool:
                return len(loop.during("paused")) >= 8

            loop.phase = "paused"
            own_redis.pause()
            await wait_until_async(eight_reads, "eight reads while Redis is paused")
            own_redis.resume()
            loop.phase = "resumed"
        return loop, await read_until(reader, "cache")

    loop, after = with_reader(paused, body)
    during = loop.during("paused")
    assert all(outcome.error is None for outcome in during)
    values = [outcome.value for outcome in during if outcome.value is not None]
    assert all(
        (v.source, v.generation, v.data["total_emails"]) == ("fallback", 0, 2) for v in values[1:]
    )
    assert sum(1 for outcome in during if outcome.seconds >= WAITED) <= 2
    assert after.source == "cache"
    assert len(events(logs, "reader.redis_unavailable")) == 1
    assert len(events(logs, "reader.redis_recovered")) == 1


@pytest.mark.usefixtures("data")
def test_hung_redis_port_no_coroutine_waits_once_the_breaker_opens(settings: Settings) -> None:
    """Against a port that accepts and never answers, the first concurrent reads wait on the
    timeout and open the breaker; every later read is served from the database at once, each
    batch of concurrent coroutines sharing one computation."""

    with SilentPort() as hung:
        hung_settings = replace(
            settings, redis_url=hung.url, redis_timeout_seconds=TIMEOUT, breaker_failures=2
        )

        async def timed(reader: AsyncDashboardReader) -> tuple[float, DashboardValue]:
            started = time.monotonic()
            value = await reader.get_aggregates(account_id=1)
            return time.monotonic() - started, value

        async def body(reader: AsyncDashboardReader) -> list[list[tuple[float, DashboardValue]]]:
            return [
                list(await asyncio.gather(*(timed(reader) for _ in range(20)))) for _ in range(3)
            ]

        first, *later = with_reader(hung_settings, body)
    assert all(value.data["total_emails"] == 2 for _, value in first)
    assert [seconds >= WAITED for seconds, _ in first] == [True] * 20  # they all started first
    for batch in later:
        assert all((v.source, v.generation) == ("fallback", 0) for _, v in batch)
        assert all(seconds < TIMEOUT / 2 for seconds, _ in batch), batch


@pytest.mark.usefixtures("data")
def test_stopped_redis_raises_cache_unavailable_when_configured(
    settings: Settings, own_redis: RedisServer
) -> None:
    """With DASHCACHE_ON_REDIS_DOWN=error a stopped Redis gives CacheUnavailable, never a
    redis-py error; a Redis restarted on the same port is used again without intervention."""
    strict = replace(
        settings,
        redis_url=own_redis.url,
        on_redis_down="error",
        breaker_failures=1,
        breaker_reset_seconds=0.2,
    )

    async def body(reader: AsyncDashboardReader) -> DashboardValue:
        await reader.get_aggregates(account_id=1)
        own_redis.stop()
        for _ in range(3):
            with pytest.raises(CacheUnavailable, match="DASHCACHE_ON_REDIS_DOWN"):
                await reader.get_aggregates(account_id=1)
        own_redis.start()
        return await read_until(reader, "cache")

    after = with_reader(strict, body)
    assert (after.source, after.data["total_emails"]) == ("cache", 2)


def test_redis_and_database_down_is_dashboard_unavailable(
    settings: Settings, own_redis: RedisServer
) -> None:
    """With neither Redis nor the database answering, a read raises DashboardUnavailable."""
    down = replace(
        settings,
        redis_url=own_redis.url,
        database_url=f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/x",
    )
    own_redis.stop()
    with pytest.raises(DashboardUnavailable, match="database failed"):
        with_reader(down, lambda reader: reader.get_aggregates(account_id=1))


@pytest.mark.usefixtures("data")
def test_full_redis_under_noeviction_keeps_serving(
    settings: Settings, own_redis: RedisServer, logs: list[dict[str, Any]]
) -> None:
    """A Redis refusing writes (OOM under noeviction) still serves hits; misses are computed
    from the database; the error reply is logged and does not open the breaker."""
    full = replace(settings, redis_url=own_redis.url, breaker_failures=1)

    async def body(reader: AsyncDashboardReader) -> tuple[DashboardValue, DashboardValue]:
        await reader.get_aggregates(account_id=1)
        await reader.client.config_set("maxmemory-policy", "noeviction")
        await reader.client.config_set("maxmemory", 1)
        return await reader.get_aggregates(account_id=2), await reader.get_aggregates(1)

    miss, hit = with_reader(full, body)
    assert (miss.source, miss.generation, hit.source) == ("fallback", 0, "cache")
    assert events(logs, "reader.redis_error")[0]["error"].startswith("OutOfMemoryError")
    assert events(logs, "reader.redis_unavailable") == []
