"""The store: envelopes round-trip, the generation fence keeps the newest value."""

from __future__ import annotations

import json

import redis

from dashcache.keys import KeySchema, Kind
from dashcache.store import Envelope, RedisStore, Write
from tests.helpers import NOW


def make_store(client: redis.Redis, prefix: str) -> RedisStore:
    return RedisStore(client, KeySchema(prefix), ttl_seconds=3600)


def envelope(generation: int, total: int) -> Envelope:
    return Envelope({"total_emails": total}, NOW, generation)


def test_envelope_round_trips_unicode() -> None:
    """Data, time and generation survive; names with quotes and unicode stay intact."""
    original = Envelope([['café "q" \u2028', 3]], NOW, 7)
    assert Envelope.from_json(original.to_json()) == original


def test_tickets_increase(redis_client: redis.Redis, key_prefix: str) -> None:
    """Each ticket is greater than the one before."""
    store = make_store(redis_client, key_prefix)
    first, second = store.take_ticket(), store.take_ticket()
    assert second == first + 1


def test_older_generation_cannot_overwrite_newer(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    """A computation that took its ticket first loses to one that took it later, whatever order."""
    store = make_store(redis_client, key_prefix)
    old, new = store.take_ticket(), store.take_ticket()
    assert store.write([Write(Kind.AGGREGATES, 1, envelope(new, 20))]) == [True]
    assert store.write([Write(Kind.AGGREGATES, 1, envelope(old, 10))]) == [False]
    stored = store.get(Kind.AGGREGATES, 1)
    assert stored is not None
    assert stored.data == {"total_emails": 20}


def test_fence_reads_a_generation_written_in_another_layout(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    """The fence spots the generation at the start of its own envelopes; any other JSON layout
    (keys reordered, spaces) is decoded whole, and still fences older writes."""
    store = make_store(redis_client, key_prefix)
    key = KeySchema(key_prefix).value(Kind.AGGREGATES, 1)
    older, newest = store.take_ticket(), store.take_ticket()
    body = {"data": {"total_emails": 30}, "computed_at": NOW.isoformat(), "generation": newest}
    redis_client.set(key, json.dumps(body, indent=1))
    assert store.write([Write(Kind.AGGREGATES, 1, envelope(older, 10))]) == [False]
    assert store.write([Write(Kind.AGGREGATES, 1, envelope(store.take_ticket(), 40))]) == [True]
    stored = store.get(Kind.AGGREGATES, 1)
    assert stored is not None
    assert stored.data == {"total_emails": 40}


def test_write_sets_ttl_and_records_scope(redis_client: redis.Redis, key_prefix: str) -> None:
    """Every value gets the hard TTL and its scope joins the warmed set."""
    store = make_store(redis_client, key_prefix)
    store.write([Write(Kind.BREAKDOWN, 42, envelope(store.take_ticket(), 1))])
    key = KeySchema(key_prefix).value(Kind.BREAKDOWN, 42)
    assert 3500 < redis_client.ttl(key) <= 3600
    assert store.warmed_accounts() == [42]


def test_lost_counter_heals(redis_client: redis.Redis, key_prefix: str) -> None:
    """If the counter vanished while values stayed, the next write is accepted and lifts it."""
    store = make_store(redis_client, key_prefix)
    store.write([Write(Kind.AGGREGATES, None, envelope(500, 1))])
    redis_client.delete(KeySchema(key_prefix).seq)
    assert store.write([Write(Kind.AGGREGATES, None, envelope(store.take_ticket(), 2))]) == [True]
    assert store.take_ticket() > 500


def test_large_batch_is_chunked(redis_client: redis.Redis, key_prefix: str) -> None:
    """A batch larger than one script call is written whole, one flag per value."""
    store = make_store(redis_client, key_prefix)
    generation = store.take_ticket()
    writes = [Write(Kind.AGGREGATES, i, envelope(generation, i)) for i in range(700)]
    assert store.write(writes) == [True] * 700
    raw = redis_client.get(KeySchema(key_prefix).value(Kind.AGGREGATES, 699))
    assert raw is not None
    assert json.loads(raw)["data"] == {"total_emails": 699}
