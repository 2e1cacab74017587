"""The reader when the database or Redis really fails: a closed port, a paused or stopped Redis."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import Engine

from dashcache.config import Settings
from dashcache.errors import CacheUnavailable, DashboardUnavailable
from dashcache.keys import Kind
from dashcache.reader import DashboardReader, DashboardValue
from dashcache.redis_server import RedisServer, free_port
from tests.helpers import NOW, Row, add_categories, add_emails, put_value, wait_until


@pytest.fixture
def data(pg: Engine) -> None:
    add_categories(pg, ["work"])
    add_emails(pg, [Row(1, 1, True, False, NOW), Row(1, 1, False, False, NOW)])


def events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry["event"] == name]


def read_until(reader: DashboardReader, source: str) -> DashboardValue:
    """Read scope 1 until a value comes from `source` (a reader recovers on its own)."""
    seen: list[object] = []

    def read() -> DashboardValue | None:
        try:
            value = reader.get_aggregates(account_id=1)
        except CacheUnavailable as error:
            seen[:] = [error]
            return None
        seen[:] = [value]
        return value if value.source == source else None

    found: DashboardValue = wait_until(read, f"a read from {source}", seen=lambda: seen)
    return found


def test_database_down_serves_cache_and_fails_misses(
    settings: Settings, logs: list[dict[str, Any]]
) -> None:
    """With the database unreachable, cached values (even stale) are served until the hard TTL;
    a miss raises DashboardUnavailable, and the outage is logged once."""
    down = replace(
        settings, database_url=f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/x"
    )
    reader = DashboardReader.from_settings(down)
    put_value(reader.store, Kind.AGGREGATES, 1, {"total_emails": 1}, age=0)
    put_value(reader.store, Kind.AGGREGATES, 2, {"total_emails": 2}, age=settings.soft_age + 1)
    put_value(reader.store, Kind.AGGREGATES, 3, {"total_emails": 3}, age=settings.ttl_seconds)
    try:
        current = reader.get_aggregates(account_id=1)
        stale = reader.get_aggregates(account_id=2)
        with pytest.raises(DashboardUnavailable, match="database failed"):
            reader.get_aggregates(account_id=3)
        with pytest.raises(DashboardUnavailable, match="database failed"):
            reader.get_aggregates(account_id=4)
    finally:
        reader.close()
    assert (current.source, current.stale, current.data) == ("cache", False, {"total_emails": 1})
    assert (stale.source, stale.stale, stale.data) == ("cache", True, {"total_emails": 2})
    assert len(events(logs, "reader.database_failed")) == 1


@pytest.mark.usefixtures("data")
def test_paused_redis_answers_from_database_then_recovers(
    settings: Settings, own_redis: RedisServer, logs: list[dict[str, Any]]
) -> None:
    """A Redis that hangs opens the breaker: values come from the database, the outage is
    logged once, and reads come from the cache again once Redis answers."""
    reader = DashboardReader.from_settings(
        replace(
            settings,
            redis_url=own_redis.url,
            redis_timeout_seconds=0.2,
            breaker_failures=2,
            breaker_reset_seconds=0.3,
        )
    )
    try:
        assert reader.get_aggregates(account_id=1).source == "fallback"
        own_redis.pause()
        during = [reader.get_aggregates(account_id=1) for _ in range(8)]
        own_redis.resume()
        after = read_until(reader, "cache")
    finally:
        reader.close()
    assert all(
        (v.source, v.generation, v.data["total_emails"]) == ("fallback", 0, 2) for v in during
    )
    assert after.source == "cache"
    assert len(events(logs, "reader.redis_unavailable")) == 1
    assert len(events(logs, "reader.redis_recovered")) == 1


@pytest.mark.usefixtures("data")
def test_stopped_redis_raises_cache_unavailable_when_configured(
    settings: Settings, own_redis: RedisServer
) -> None:
    """With DASHCACHE_ON_REDIS_DOWN=error a stopped Redis gives CacheUnavailable, never a
    redis-py error; a Redis restarted on the same port is used again without intervention."""
    reader = DashboardReader.from_settings(
        replace(
            settings,
            redis_url=own_redis.url,
            on_redis_down="error",
            breaker_failures=1,
            breaker_reset_seconds=0.2,
        )
    )
    try:
        reader.get_aggregates(account_id=1)
        own_redis.stop()
        for _ in range(3):
            with pytest.raises(CacheUnavailable, match="DASHCACHE_ON_REDIS_DOWN"):
                reader.get_aggregates(account_id=1)
        own_redis.start()
        after = read_until(reader, "cache")
    finally:
        reader.close()
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
    reader = DashboardReader.from_settings(down)
    try:
        with pytest.raises(DashboardUnavailable, match="database failed"):
            reader.get_aggregates(account_id=1)
    finally:
        reader.close()


@pytest.mark.usefixtures("data")
def test_full_redis_under_noeviction_keeps_serving(
    settings: Settings, own_redis: RedisServer, logs: list[dict[str, Any]]
) -> None:
    """A Redis refusing writes (OOM under noeviction) still serves hits; misses are computed
    from the database; the error reply is logged and does not open the breaker."""
    reader = DashboardReader.from_settings(
        replace(settings, redis_url=own_redis.url, breaker_failures=1)
    )
    try:
        reader.get_aggregates(account_id=1)
        reader.store.client.config_set("maxmemory-policy", "noeviction")
        reader.store.client.config_set("maxmemory", 1)
        miss = reader.get_aggregates(account_id=2)
        hit = reader.get_aggregates(account_id=1)
    finally:
        reader.close()
    assert (miss.source, miss.generation, hit.source) == ("fallback", 0, "cache")
    assert events(logs, "reader.redis_error")[0]["error"].startswith("OutOfMemoryError")
    assert events(logs, "reader.redis_unavailable") == []
