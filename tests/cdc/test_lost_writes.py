"""The WAL source when Redis loses writes it confirmed: a failover to a replica that missed them,
a lone Redis restarted empty; and `WAIT` holding the confirmation until the replica has them.

No scheduled pass runs: what is repaired, the consumer repaired.
"""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
import redis
from sqlalchemy import Engine, text

from dashcache.cdc.pgoutput import parse_lsn
from dashcache.config import Settings
from dashcache.keys import KeySchema
from dashcache.redis_server import RedisServer
from dashcache.store import make_redis
from tests.cdc.walhelpers import consuming, exact, scopes, seed, warm
from tests.eventing import Settled
from tests.helpers import wait_until
from tests.sentinels import SentinelTopology

REPAIRED_WITHIN = 60.0
"""Every number of every scope equals a fresh count this long after the promotion."""


@pytest.fixture
def through_sentinel(cdc_settings: Settings, topology: SentinelTopology) -> Settings:
    """The WAL test's settings with the cache and the broker behind Sentinel."""
    return replace(cdc_settings, redis_url=topology.url(0), broker_url=topology.url(1))


def flip(engine: Engine, account: int) -> int:
    """Flip the unread flags of one account in one transaction; a WAL position before its
    commit (the slot's confirmed position past it means the transaction was confirmed)."""
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE emails SET is_unread = NOT is_unread WHERE account_id = :a"),
            {"a": account},
        )
        return parse_lsn(
            conn.execute(text("SELECT pg_current_wal_insert_lsn()::text")).scalar_one()
        )


def confirmed(engine: Engine, slot: str) -> int:
    """The slot's confirmed_flush_lsn."""
    with engine.connect() as conn:
        found = conn.execute(
            text("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = :s"),
            {"s": slot},
        ).scalar_one()
    return parse_lsn(found)


def wait_confirmed(engine: Engine, slot: str, past: int, what: str) -> None:
    wait_until(lambda: confirmed(engine, slot) > past, what, seen=lambda: confirmed(engine, slot))


def wait_repaired(
    client: redis.Redis, settings: Settings, engine: Engine, since: float, logs: list[dict]
) -> None:
    """Every value exact within REPAIRED_WITHIN of `since`, and the consumer said why (a
    Sentinel still finishing the failover may name no primary for a moment: asked again)."""

    def repaired() -> object:
        try:
            return exact(client, settings, engine, scopes(engine))
        except redis.RedisError as error:
            return Settled(f"{type(error).__name__}: {error}")

    wait_until(
        repaired,
        "every value of every scope to equal a fresh count",
        timeout=max(since + REPAIRED_WITHIN - time.monotonic(), 1.0),
    )
    assert any(e["event"] == "cdc.redis_behind" for e in logs), "no cdc.redis_behind logged"


def test_a_confirmed_transaction_the_promoted_replica_never_got_is_repaired(
    through_sentinel: Settings, wal_engine: Engine, topology: SentinelTopology
) -> None:
    """The primary applies a transaction and the consumer confirms it to PostgreSQL (so the
    slot never sends it again); the replica never receives it; the primary dies and the replica
    is promoted: the consumer finds Redis behind what it confirmed and recomputes."""
    settings = through_sentinel
    seed(wal_engine)
    warm(settings)
    client = make_redis(settings.redis_url, 5.0)
    applied_key = KeySchema(settings.key_prefix).cdc_applied
    try:
        with consuming(settings) as logs:
            flip(wal_engine, 2)
            wait_until(lambda: exact(client, settings, wal_engine, scopes(wal_engine)), "exact")

            def lost_write() -> None:
                position = flip(wal_engine, 1)
                wait_confirmed(wal_engine, settings.cdc_slot, position, "the flip confirmed")
                primary = redis.Redis(port=topology.primary.port)
                try:
                    assert exact(primary, settings, wal_engine, scopes(wal_engine))
                    held = primary.get(applied_key)
                finally:
                    primary.close()
                assert held is not None
                assert int(held) > position

            topology.fail_over_losing(lost_write)
            wait_repaired(client, settings, wal_engine, time.monotonic(), logs)
    finally:
        client.close()


def test_a_lone_redis_restarted_empty_under_the_consumer_is_repaired(
    cdc_settings: Settings, wal_engine: Engine
) -> None:
    """The consumer confirmed a transaction, then Redis restarts with nothing: every scope is
    recomputed at once (no value is left missing until a pass)."""
    with RedisServer() as server:
        settings = replace(cdc_settings, redis_url=server.url, broker_url=server.url)
        seed(wal_engine)
        warm(settings)
        client = redis.Redis.from_url(server.url)
        try:
            with consuming(settings) as logs:
                position = flip(wal_engine, 3)
                wait_confirmed(wal_engine, settings.cdc_slot, position, "the flip confirmed")
                server.stop()
                server.start()
                wait_repaired(client, settings, wal_engine, time.monotonic(), logs)
        finally:
            client.close()


def test_with_one_replica_required_a_transaction_is_confirmed_once_the_replica_has_it(
    through_sentinel: Settings, wal_engine: Engine, topology: SentinelTopology
) -> None:
    """DASHCACHE_REDIS_MIN_REPLICAS=1: while the replica is paused the transaction is applied
    on the primary but the slot's confirmed position does not pass it (WAIT comes short, again
    and again); once the replica is resumed it does, and the replica holds the values."""
    settings = replace(through_sentinel, redis_min_replicas=1)
    seed(wal_engine)
    warm(settings)
    keys = KeySchema(settings.key_prefix)
    primary = redis.Redis(port=topology.primary.port)
    replica = redis.Redis(port=topology.replica.port)
    try:
        with consuming(settings) as logs:
            topology.replica.pause()
            try:
                position = flip(wal_engine, 1)
                wait_until(
                    lambda: exact(primary, settings, wal_engine, scopes(wal_engine)),
                    "the flip applied on the primary",
                )
                wait_until(
                    lambda: int(primary.hget(keys.metrics, "cdc:wait_short") or 0) >= 3,
                    "three WAITs short of the replica counted",
                    seen=lambda: primary.hget(keys.metrics, "cdc:wait_short"),
                )
                assert confirmed(wal_engine, settings.cdc_slot) < position
                assert any(e["event"] == "cdc.wait_short" for e in logs)
            finally:
                topology.replica.resume()
            wait_confirmed(wal_engine, settings.cdc_slot, position, "the flip confirmed")
            assert exact(replica, settings, wal_engine, scopes(wal_engine))
            assert any(e["event"] == "cdc.replicas_caught_up" for e in logs)
    finally:
        primary.close()
        replica.close()
