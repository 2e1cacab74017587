"""Edges of delta maintenance on real Redis and PostgreSQL: ids above 2**53 in the Lua, a logged
txid beyond a snapshot's xmax, a category the state does not know, a failing background batch."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
import redis
from sqlalchemy import Engine, text
from sqlalchemy.orm import sessionmaker

from dashcache import clock
from dashcache.config import Settings
from dashcache.events import EmailCreated, EmailRow, EventPublisher
from dashcache.keys import KeySchema, Kind
from dashcache.maintained import LUA_LIBRARY
from dashcache.models import Email
from dashcache.recompute import recompute_every_scope, recompute_scope
from dashcache.redis_server import RedisServer
from dashcache.store import RedisStore
from tests.eventing import envelope, truth
from tests.helpers import add_categories

BIG = 2**53


@pytest.fixture
def publisher(settings: Settings) -> Iterator[EventPublisher]:
    """An event publisher for the test's settings."""
    made = EventPublisher(settings)
    yield made
    made.close()


@pytest.fixture
def store(settings: Settings, pg: Engine, redis_client: redis.Redis) -> RedisStore:
    """The store of the test's prefix, every scope warmed from two emails of account 1."""
    add_categories(pg, ["work", "news"])
    made = RedisStore(redis_client, KeySchema(settings.key_prefix), settings.ttl_seconds)
    now = clock.now()
    with sessionmaker(pg).begin() as session:
        for n in range(2):
            session.add(
                Email(
                    message_id=f"<{n}@edge>",
                    account_id=1,
                    category_id=1,
                    is_unread=True,
                    is_auto_labeled=False,
                    created_at=now - timedelta(days=n),
                    updated_at=now,
                )
            )
    recompute_every_scope(pg, made, settings.max_breakdown)
    return made


def committed_txid(engine: Engine) -> int:
    """The id of a transaction that committed just now."""
    with engine.begin() as conn:
        return int(conn.execute(text("SELECT pg_current_xact_id()::text")).scalar_one())


def created(email_id: int, category_id: int | None, txid: int) -> EmailCreated:
    row = EmailRow(category_id, True, False, clock.now())
    return EmailCreated(1, email_id, row, txid=txid)


def test_lua_compares_ids_above_2_53_exactly(redis_client: redis.Redis) -> None:
    """`lt` and `visible` order decimal ids that doubles cannot tell apart."""
    script = (
        LUA_LIBRARY
        + """
local snap = {ARGV[3], ARGV[4], {ARGV[5]}}
return {lt(ARGV[1], ARGV[2]) and 1 or 0, lt(ARGV[2], ARGV[1]) and 1 or 0,
        visible(snap, ARGV[1]) and 1 or 0, visible(snap, ARGV[2]) and 1 or 0,
        visible(snap, ARGV[5]) and 1 or 0, visible(snap, ARGV[6]) and 1 or 0}
"""
    )
    a, b = str(BIG), str(BIG + 1)  # equal as doubles
    xmin, xmax, busy, later = str(BIG + 1), str(BIG + 3), str(BIG + 2), str(BIG + 3)
    got = redis_client.eval(script, 0, a, b, xmin, xmax, busy, later)
    assert got == [1, 0, 1, 1, 0, 0]  # below xmin; at xmin; in progress; at xmax
    huge = str(2**63 - 2), str(2**63 - 1)
    assert redis_client.eval(script, 0, *huge, huge[1], huge[1], "1", "1")[:4] == [1, 0, 1, 0]


def test_a_logged_txid_beyond_a_later_snapshots_xmax_is_dropped(
    settings: Settings,
    pg: Engine,
    redis_client: redis.Redis,
    store: RedisStore,
    publisher: EventPublisher,
) -> None:
    """A delta whose txid no snapshot can ever see (a producer bug) moves the value at once,
    and the next recompute drops it from the log instead of applying it again."""
    keys = KeySchema(settings.key_prefix)
    before = envelope(redis_client, settings, Kind.AGGREGATES, 1)["data"]["total_emails"]
    future = str(BIG * 4 + 7)
    publisher.publish_many([created(999, 1, int(future))])
    assert (
        envelope(redis_client, settings, Kind.AGGREGATES, 1)["data"]["total_emails"] == before + 1
    )
    assert any(f.decode().startswith(future) for f in redis_client.hkeys(keys.deltas(1)))
    recompute_scope(pg, store, 1, settings.max_breakdown)
    stored = envelope(redis_client, settings, Kind.AGGREGATES, 1)
    assert stored["data"]["total_emails"] == before
    for kind in Kind:
        value = envelope(redis_client, settings, kind, 1)
        assert value["data"] == truth(pg, kind, 1, value["computed_at"], settings.max_breakdown)
    assert not any(f.decode().startswith(future) for f in redis_client.hkeys(keys.deltas(1)))


def test_a_delta_for_a_category_the_state_does_not_know_is_counted_aside(
    settings: Settings,
    pg: Engine,
    redis_client: redis.Redis,
    store: RedisStore,
    publisher: EventPublisher,
) -> None:
    """An email of a category created after the state's snapshot counts in the totals and aside
    in the breakdown state, leaving the rendered breakdown as it was."""
    keys = KeySchema(settings.key_prefix)
    breakdown = envelope(redis_client, settings, Kind.BREAKDOWN, 1)["data"]
    total = envelope(redis_client, settings, Kind.AGGREGATES, 1)["data"]["total_emails"]
    txid = committed_txid(pg)
    publisher.publish_many([created(998, 77, txid), created(997, 1, txid)])
    assert envelope(redis_client, settings, Kind.BREAKDOWN, 1)["data"] == [
        [name, count + (name == "work")] for name, count in breakdown
    ]
    assert envelope(redis_client, settings, Kind.AGGREGATES, 1)["data"]["total_emails"] == total + 2
    state: dict[str, Any] = json.loads(redis_client.get(keys.state(Kind.BREAKDOWN, 1)) or b"{}")
    assert state["u"] == {"77": 1}


def test_a_failing_background_batch_is_logged_and_the_next_one_is_sent(
    settings: Settings, own_redis: RedisServer, logs: list[dict[str, Any]]
) -> None:
    """A single publish whose batch fails (Redis down) is logged with its size; the thread keeps
    sending, so a publish after Redis is back arrives."""
    mine = replace(settings, redis_url=own_redis.url)
    publisher = EventPublisher(mine)
    client = redis.Redis.from_url(own_redis.url)
    try:
        own_redis.stop()
        publisher.publish(created(1, 1, 5))
        assert publisher.flush(60)
        failed = [e for e in logs if e.get("event") == "event.publish_failed"]
        assert [e["events"] for e in failed] == [1]
        own_redis.start()
        publisher.publish(created(2, 1, 6))
        assert publisher.flush(60)
        assert client.hlen(KeySchema(settings.key_prefix).deltas(1)) == 1
    finally:
        publisher.close()
        client.close()
