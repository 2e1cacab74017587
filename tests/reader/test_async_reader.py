"""The asyncio reader: hits, fallback on a miss, fresh and max_age reads, serving stale, limits,
errors, and the drop-in repository (twin of tests/test_reader.py)."""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
import redis
from sqlalchemy import Engine, text

from dashcache.async_reader import AsyncDashboardReader, DashboardRepository
from dashcache.config import Settings
from dashcache.dispatch import WARM_SCOPE
from dashcache.errors import DashboardUnavailable, InvalidArgument
from dashcache.keys import KeySchema, Kind
from dashcache.reader import DashboardReader, DashboardValue
from dashcache.store import RedisStore, make_redis
from tests.async_readers import with_reader
from tests.helpers import NOW, Row, add_categories, add_emails, put_value, wait_until_async


@pytest.fixture
def data(pg: Engine) -> None:
    add_categories(pg, ["work", "news", "social"])
    day = timedelta(days=1)
    add_emails(
        pg,
        [
            Row(1, 1, True, True, NOW - day),
            Row(1, 1, False, True, NOW - 8 * day),
            Row(1, 2, True, False, NOW - 2 * day),
            Row(2, 3, False, False, NOW - day),
        ],
    )


@pytest.fixture
def store(settings: Settings) -> RedisStore:
    """A sync store on the test prefix, to put aged values in place."""
    keys = KeySchema(settings.key_prefix)
    return RedisStore(make_redis(settings.redis_url, 1.0), keys, settings.ttl_seconds)


@pytest.mark.usefixtures("data")
def test_miss_falls_back_then_hits(settings: Settings) -> None:
    """A missing key is computed and stored by the reader; the next read is a cache hit."""

    async def body(reader: AsyncDashboardReader) -> tuple[DashboardValue, DashboardValue]:
        return await reader.get_aggregates(account_id=1), await reader.get_aggregates(1)

    first, second = with_reader(settings, body)
    assert (first.source, first.data["total_emails"], first.data["unread_count"]) == (
        "fallback",
        3,
        2,
    )
    assert (second.source, second.data, second.generation) == (
        "cache",
        first.data,
        first.generation,
    )


@pytest.mark.usefixtures("data")
def test_sync_and_async_readers_read_the_same_values(settings: Settings) -> None:
    """A value the asyncio reader stored is what the sync reader reads, and the other way round."""

    async def body(reader: AsyncDashboardReader) -> tuple[DashboardValue, DashboardValue]:
        return await reader.get_aggregates(account_id=1), await reader.get_category_breakdown(
            limit=3, account_id=2
        )

    stored, breakdown = with_reader(settings, body)
    sync = DashboardReader.from_settings(settings)
    try:
        assert sync.get_aggregates(account_id=1).data == stored.data
        read_sync = sync.get_category_breakdown(limit=3, account_id=2)
    finally:
        sync.close()
    assert (read_sync.source, read_sync.data) == ("cache", breakdown.data)


@pytest.mark.usefixtures("data")
def test_fallback_stores_both_kinds_and_slices(settings: Settings) -> None:
    """One fallback pass fills aggregates and breakdown; one breakdown serves every limit."""

    async def body(reader: AsyncDashboardReader) -> list[DashboardValue]:
        await reader.get_aggregates(account_id=None)
        return [
            await reader.get_category_breakdown(limit=3),
            await reader.get_category_breakdown(limit=1, account_id=1),
            await reader.get_category_breakdown(limit=2, account_id=2),
        ]

    every, one, two = with_reader(settings, body)
    assert every.source == "cache"
    assert list(every.data.items()) == [("work", 2), ("news", 1), ("social", 1)]
    assert (one.data, two.data) == ({"work": 2}, {"social": 1, "news": 0})


def test_empty_scope_is_zeros(settings: Settings) -> None:
    """An account with no emails reads as zeros, not an error."""
    value = with_reader(settings, lambda reader: reader.get_aggregates(account_id=99))
    assert value.data["total_emails"] == 0
    assert value.data["weekly_growth"] == {"emails": 0, "previous": 0, "percentage": 0.0}


@pytest.mark.parametrize(
    ("call", "named"),
    [
        ({"limit": 0}, "from 1 to 50"),
        ({"limit": 51}, "from 1 to 50"),
        ({"limit": "10"}, "from 1 to 50"),
        ({"limit": True}, "from 1 to 50"),
        ({"account_id": -1}, "account_id"),
        ({"account_id": "1"}, "account_id"),
        ({"account_id": 2**63}, "account_id"),
        ({"fresh": "yes"}, "fresh"),
        ({"max_age": -1}, "max_age"),
        ({"max_age": True}, "max_age"),
    ],
)
def test_bad_arguments_are_typed_errors(
    settings: Settings, call: dict[str, Any], named: str
) -> None:
    """Bad limit, account_id, fresh or max_age raise InvalidArgument saying what is allowed."""
    with pytest.raises(InvalidArgument, match=named):
        with_reader(settings, lambda reader: reader.get_category_breakdown(**call))


@pytest.mark.usefixtures("data")
def test_fresh_computes_now_and_refreshes_cache(settings: Settings, pg: Engine) -> None:
    """fresh=True sees a change the cache does not have yet, and writes it through the fence."""

    async def body(reader: AsyncDashboardReader) -> list[DashboardValue]:
        before = await reader.get_aggregates(account_id=2)
        await asyncio.to_thread(add_emails, pg, [Row(2, 3, False, False, NOW)])
        cached = await reader.get_aggregates(account_id=2)
        fresh = await reader.get_aggregates(account_id=2, fresh=True)
        return [before, cached, fresh, await reader.get_category_breakdown(account_id=2)]

    before, cached, fresh, after = with_reader(settings, body)
    assert before.data["total_emails"] == cached.data["total_emails"] == 1
    assert (fresh.source, fresh.data["total_emails"], fresh.stale) == ("fresh", 2, False)
    assert (after.source, after.data["social"]) == ("cache", 2)


@pytest.mark.usefixtures("data")
def test_max_age_and_hard_ttl(settings: Settings, store: RedisStore) -> None:
    """A value older than max_age is recomputed (without max_age it is served); one older than
    the hard TTL is never served."""
    put_value(store, Kind.AGGREGATES, 1, {"total_emails": -1}, age=100)
    put_value(store, Kind.AGGREGATES, 2, {"total_emails": -1}, age=settings.ttl_seconds)

    async def body(reader: AsyncDashboardReader) -> list[DashboardValue]:
        return [
            await reader.get_aggregates(account_id=1, max_age=200),
            await reader.get_aggregates(account_id=1, max_age=50),
            await reader.get_aggregates(account_id=1, max_age=50),
            await reader.get_aggregates(account_id=2),
        ]

    served, recomputed, cached, expired = with_reader(settings, body)
    store.client.close()
    assert served.data == {"total_emails": -1}
    assert (recomputed.source, recomputed.data["total_emails"]) == ("fallback", 3)
    assert cached.source == "cache"
    assert (expired.source, expired.data["total_emails"]) == ("fallback", 1)


def test_stale_value_served_and_refresh_queued_once(
    settings: Settings, store: RedisStore, redis_client: redis.Redis
) -> None:
    """Past the soft age the value is served at once, stale, and one warm_scope is queued."""
    old = settings.soft_age + 10
    put_value(store, Kind.AGGREGATES, 5, {"total_emails": 9}, age=old)
    put_value(store, Kind.BREAKDOWN, 5, [["work", 9]], age=old)

    async def body(reader: AsyncDashboardReader) -> tuple[DashboardValue, DashboardValue]:
        return await reader.get_aggregates(5), await reader.get_category_breakdown(account_id=5)

    first, second = with_reader(settings, body)  # closing waits for the background send
    store.client.close()
    assert (first.source, first.stale, first.data) == ("cache", True, {"total_emails": 9})
    assert (second.stale, second.data) == (True, {"work": 9})
    messages = redis_client.lrange(settings.events_queue, 0, -1)
    assert len(messages) == 1
    message = json.loads(messages[0])
    assert message["headers"]["task"] == WARM_SCOPE
    assert json.loads(base64.b64decode(message["body"]))[0] == [5]


@pytest.mark.usefixtures("data")
def test_oversized_value_is_returned_not_stored(
    settings: Settings, redis_client: redis.Redis, logs: list[dict[str, Any]]
) -> None:
    """A value over the size limit is refused by the store and logged, yet still returned."""
    small = replace(settings, max_value_bytes=150)
    value = with_reader(small, lambda reader: reader.get_aggregates(account_id=1))
    keys = KeySchema(settings.key_prefix)
    assert (value.source, value.data["total_emails"]) == ("fallback", 3)
    assert redis_client.get(keys.value(Kind.AGGREGATES, 1)) is None
    assert redis_client.get(keys.value(Kind.BREAKDOWN, 1)) is not None
    refused = [e["key"] for e in logs if e["event"] == "store.value_too_large"]
    assert refused == [keys.value(Kind.AGGREGATES, 1)]


@pytest.mark.usefixtures("data")
def test_compute_limit_bounds_a_bypass_storm(settings: Settings, pg: Engine) -> None:
    """With the database slow, only `compute_limit` fresh reads run; the rest fail fast, typed."""
    limited = replace(
        settings, compute_limit=2, wait_seconds=0.5, db_timeout_seconds=30, lock_seconds=60
    )

    async def body(reader: AsyncDashboardReader) -> list[object]:
        async def read() -> object:
            try:
                return (await reader.get_aggregates(account_id=1, fresh=True)).source
            except DashboardUnavailable as error:
                return error

        with pg.connect() as blocker:
            blocker.execute(text("LOCK TABLE emails IN ACCESS EXCLUSIVE MODE"))
            reads = [asyncio.create_task(read()) for _ in range(6)]

            async def four_refused() -> bool:
                return sum(task.done() for task in reads) >= 4

            await wait_until_async(four_refused, "four reads refused", seen=lambda: reads)
            refused = [task for task in reads if task.done()]
            blocker.rollback()
        later = await asyncio.gather(*(task for task in reads if task not in refused))
        return [*(task.result() for task in refused), *later]

    outcomes = with_reader(limited, body)
    assert all("DASHCACHE_COMPUTE_LIMIT" in str(error) for error in outcomes[:4])
    assert outcomes[4:] == ["fresh", "fresh"]


@pytest.mark.usefixtures("data")
def test_repository_gives_the_routes_shapes(settings: Settings) -> None:
    """The repository returns the aggregates dict and a name -> count dict, count desc."""

    async def body(reader: AsyncDashboardReader) -> list[Any]:
        every, one = DashboardRepository(reader), DashboardRepository(reader, account_id=1)
        return [
            await every.get_dashboard_aggregates(),
            await every.get_category_breakdown(limit=2),
            await one.get_dashboard_aggregates(fresh=True),
            await one.get_category_breakdown(fresh=True),
        ]

    aggregates, top_two, one_aggregates, one_breakdown = with_reader(settings, body)
    assert set(aggregates) == {
        "total_emails",
        "auto_labeled",
        "categories_count",
        "unread_count",
        "weekly_growth",
    }
    assert aggregates["total_emails"] == 4
    assert top_two == {"work": 2, "news": 1}
    assert one_aggregates["total_emails"] == 3
    assert one_breakdown == {"work": 2, "news": 1, "social": 0}
    with pytest.raises(InvalidArgument, match="account_id"):
        DashboardRepository(None, account_id=-1)  # type: ignore[arg-type]
