"""The reader: hits, fallback on a miss, fresh and max_age reads, serving stale, limits, errors."""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
import redis
from sqlalchemy import Engine, text

from dashcache.async_reader import AsyncDashboardReader
from dashcache.config import Settings
from dashcache.dispatch import WARM_SCOPE
from dashcache.errors import DashboardUnavailable, InvalidArgument
from dashcache.keys import KeySchema, Kind
from dashcache.reader import DashboardReader
from tests.async_readers import with_reader
from tests.helpers import NOW, Row, add_categories, add_emails, put_value, wait_until


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


@pytest.mark.usefixtures("data")
def test_miss_falls_back_then_hits(reader: DashboardReader) -> None:
    """A missing key is computed and stored by the reader; the next read is a cache hit."""
    first = reader.get_aggregates(account_id=1)
    assert first.source == "fallback"
    assert first.data["total_emails"] == 3
    assert first.data["unread_count"] == 2
    second = reader.get_aggregates(account_id=1)
    assert second.source == "cache"
    assert second.data == first.data
    assert second.generation == first.generation


@pytest.mark.usefixtures("data")
def test_fallback_stores_both_kinds(reader: DashboardReader) -> None:
    """One fallback pass fills aggregates and breakdown of the scope."""
    reader.get_aggregates(account_id=None)
    breakdown = reader.get_category_breakdown(limit=3)
    assert breakdown.source == "cache"
    assert list(breakdown.data.items()) == [("work", 2), ("news", 1), ("social", 1)]


@pytest.mark.usefixtures("data")
def test_breakdown_is_sliced_to_limit(reader: DashboardReader) -> None:
    """One stored breakdown serves every smaller limit, in order."""
    assert reader.get_category_breakdown(limit=1, account_id=1).data == {"work": 2}
    assert reader.get_category_breakdown(limit=2, account_id=2).data == {"social": 1, "news": 0}


def test_empty_scope_is_zeros(reader: DashboardReader) -> None:
    """An account with no emails reads as zeros, not an error."""
    value = reader.get_aggregates(account_id=99)
    assert value.data["total_emails"] == 0
    assert value.data["weekly_growth"] == {"emails": 0, "previous": 0, "percentage": 0.0}


@pytest.mark.parametrize("limit", [0, -1, 51, 2.5, "10", True, None])
def test_bad_limit_is_typed_error(reader: DashboardReader, limit: object) -> None:
    """A limit outside 1..max_breakdown raises InvalidArgument saying what is allowed."""
    with pytest.raises(InvalidArgument, match="from 1 to 50"):
        reader.get_category_breakdown(limit=limit)  # type: ignore[arg-type]


@pytest.mark.parametrize("account_id", [-1, "1", 1.0, True, 2**63])
def test_bad_account_id_is_typed_error(reader: DashboardReader, account_id: object) -> None:
    """A negative or non-integer account id raises InvalidArgument."""
    with pytest.raises(InvalidArgument, match="account_id"):
        reader.get_aggregates(account_id=account_id)  # type: ignore[arg-type]


@pytest.mark.usefixtures("data")
def test_fresh_computes_now_and_refreshes_cache(reader: DashboardReader, pg: Engine) -> None:
    """fresh=True sees a change the cache does not have yet, and writes it through the fence."""
    assert reader.get_aggregates(account_id=2).data["total_emails"] == 1
    add_emails(pg, [Row(2, 3, False, False, NOW)])
    assert reader.get_aggregates(account_id=2).data["total_emails"] == 1
    fresh = reader.get_aggregates(account_id=2, fresh=True)
    assert (fresh.source, fresh.data["total_emails"], fresh.stale) == ("fresh", 2, False)
    after = reader.get_category_breakdown(account_id=2)
    assert (after.source, after.data["social"]) == ("cache", 2)


@pytest.mark.usefixtures("data")
def test_max_age_treats_older_value_as_miss(reader: DashboardReader) -> None:
    """A cached value older than max_age is recomputed; without max_age it is served."""
    put_value(reader.store, Kind.AGGREGATES, 1, {"total_emails": -1}, age=100)
    assert reader.get_aggregates(account_id=1, max_age=200).data == {"total_emails": -1}
    recomputed = reader.get_aggregates(account_id=1, max_age=50)
    assert (recomputed.source, recomputed.data["total_emails"]) == ("fallback", 3)
    assert reader.get_aggregates(account_id=1, max_age=50).source == "cache"


@pytest.mark.usefixtures("data")
def test_past_hard_ttl_is_a_miss(reader: DashboardReader) -> None:
    """A value older than the hard TTL is never served, even if Redis still holds it."""
    put_value(
        reader.store, Kind.AGGREGATES, 1, {"total_emails": -1}, age=reader.settings.ttl_seconds
    )
    value = reader.get_aggregates(account_id=1)
    assert (value.source, value.data["total_emails"]) == ("fallback", 3)


def test_stale_value_served_and_refresh_queued_once(
    settings: Settings, redis_client: redis.Redis
) -> None:
    """Past the soft age the value is served at once, stale, and one warm_scope is queued."""
    reader = DashboardReader.from_settings(settings)
    old = settings.soft_age + 10
    put_value(reader.store, Kind.AGGREGATES, 5, {"total_emails": 9}, age=old)
    put_value(reader.store, Kind.BREAKDOWN, 5, [["work", 9]], age=old)
    first = reader.get_aggregates(account_id=5)
    second = reader.get_category_breakdown(account_id=5)
    reader.close()  # waits for the background send
    assert (first.source, first.stale, first.data) == ("cache", True, {"total_emails": 9})
    assert (second.stale, second.data) == (True, {"work": 9})
    messages = redis_client.lrange(settings.events_queue, 0, -1)
    assert len(messages) == 1
    message = json.loads(messages[0])
    assert message["headers"]["task"] == WARM_SCOPE
    assert message["headers"]["expires"] is not None
    assert json.loads(base64.b64decode(message["body"]))[0] == [5]


@pytest.mark.usefixtures("data")
def test_oversized_value_is_returned_not_stored(
    settings: Settings, redis_client: redis.Redis, logs: list[dict[str, Any]]
) -> None:
    """A value over the size limit is refused by the store and logged, yet still returned."""
    reader = DashboardReader.from_settings(replace(settings, max_value_bytes=150))
    value = reader.get_aggregates(account_id=1)
    reader.close()
    keys = KeySchema(settings.key_prefix)
    assert (value.source, value.data["total_emails"]) == ("fallback", 3)
    assert redis_client.get(keys.value(Kind.AGGREGATES, 1)) is None
    assert redis_client.get(keys.value(Kind.BREAKDOWN, 1)) is not None
    refused = [e["key"] for e in logs if e["event"] == "store.value_too_large"]
    assert refused == [keys.value(Kind.AGGREGATES, 1)]


@pytest.mark.usefixtures("data")
def test_compute_limit_bounds_a_bypass_storm(settings: Settings, pg: Engine) -> None:
    """With the database slow, only `compute_limit` fresh reads run; the rest fail fast, typed."""
    reader = DashboardReader.from_settings(
        replace(settings, compute_limit=2, wait_seconds=0.5, db_timeout_seconds=30, lock_seconds=60)
    )
    results: list[object] = []

    def read() -> None:
        try:
            results.append(reader.get_aggregates(account_id=1, fresh=True).source)
        except DashboardUnavailable as error:
            results.append(error)

    with pg.connect() as blocker:
        blocker.execute(text("LOCK TABLE emails IN ACCESS EXCLUSIVE MODE"))
        threads = [threading.Thread(target=read) for _ in range(6)]
        for thread in threads:
            thread.start()
        wait_until(lambda: len(results) >= 4, "four reads refused", seen=lambda: results)
        refused = list(results)
        blocker.rollback()
    for thread in threads:
        thread.join()
    reader.close()
    assert len(refused) == 4
    assert all("DASHCACHE_COMPUTE_LIMIT" in str(error) for error in refused)
    assert results[4:] == ["fresh", "fresh"]


@pytest.mark.parametrize(
    ("options", "named"),
    [({"fresh": "yes"}, "fresh"), ({"max_age": -1}, "max_age"), ({"max_age": True}, "max_age")],
)
def test_bad_read_options_are_typed_errors(
    reader: DashboardReader, options: dict[str, object], named: str
) -> None:
    """fresh must be a bool and max_age a number of seconds >= 0."""
    with pytest.raises(InvalidArgument, match=named):
        reader.get_aggregates(**options)  # type: ignore[arg-type]


@pytest.mark.usefixtures("data")
def test_hits_mark_their_account_read_at_the_metrics_flush(
    settings: Settings, reader: DashboardReader, redis_client: redis.Redis
) -> None:
    """A hit adds no Redis call, but the next metrics flush notes its account in the read
    marks the pass keeps warming (sync and asyncio); a process notes an account at most once an
    hour, and the all-accounts scope never."""
    keys = KeySchema(settings.key_prefix)
    reader.get_aggregates(account_id=1)
    reader.get_aggregates(account_id=None)
    redis_client.delete(keys.reads)
    assert reader.get_aggregates(account_id=1).source == "cache"
    assert reader.get_category_breakdown(account_id=None).source == "cache"
    assert redis_client.zcard(keys.reads) == 0  # nothing written on the hit itself
    assert reader.metrics.flush()
    assert redis_client.zrange(keys.reads, 0, -1) == [b"1"]
    assert abs(float(redis_client.zscore(keys.reads, "1") or 0) - time.time()) < 600
    redis_client.zadd(keys.reads, {"1": 5})
    reader.get_aggregates(account_id=1)
    assert reader.metrics.flush()
    assert redis_client.zscore(keys.reads, "1") == 5  # marked within the hour: not again

    reader.get_aggregates(account_id=2)
    redis_client.delete(keys.reads)

    async def hit(async_reader: AsyncDashboardReader) -> str:
        value = await async_reader.get_aggregates(account_id=2)
        async_reader.metrics.flush()
        return value.source

    assert with_reader(settings, hit) == "cache"
    assert redis_client.zrange(keys.reads, 0, -1) == [b"2"]
