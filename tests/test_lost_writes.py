"""App events whose deltas Redis lost: a failover to a replica that never received them, a lone
Redis restarted empty. The publisher finds its writes gone and a pass is sent at once; no
scheduled pass runs (no beat), so what is repaired, that pass repaired.
"""

from __future__ import annotations

import time
from dataclasses import replace

import redis
from sqlalchemy import Engine

from dashcache import clock
from dashcache.config import Settings
from dashcache.events import EventPublisher
from dashcache.keys import KeySchema, Kind, Scope
from dashcache.models import Email
from dashcache.recompute import recompute_every_scope
from dashcache.redis_server import RedisServer
from dashcache.store import RedisStore, make_redis
from tests.eventing import Settled, settled, tracked_sessions
from tests.helpers import NOW, Row, add_categories, add_emails, wait_until
from tests.processes import worker_process
from tests.sentinels import SentinelTopology

REPAIRED_WITHIN = 60.0
"""Every number of every scope equals a fresh count this long after the promotion."""
SCOPES: tuple[Scope, ...] = (1, 2, None)


def new_email(account_id: int, category_id: int) -> Email:
    created = clock.now()
    return Email(
        message_id=f"<lost-{account_id}-{category_id}-{created.timestamp()}@d>",
        account_id=account_id,
        category_id=category_id,
        is_unread=True,
        is_auto_labeled=False,
        created_at=created,
        updated_at=created,
    )


def warmed(settings: Settings, pg: Engine) -> None:
    """Two accounts' emails, every scope computed and stored (as a pass would)."""
    add_categories(pg, ["work", "news"])
    add_emails(pg, [Row(1, 1, True, False, NOW), Row(2, 2, False, False, NOW)])
    client = make_redis(settings.redis_url, 5.0)
    try:
        store = RedisStore(client, KeySchema(settings.key_prefix), settings.ttl_seconds)
        recompute_every_scope(pg, store, settings.max_breakdown)
    finally:
        client.close()


def exact(client: redis.Redis, settings: Settings, pg: Engine) -> Settled:
    """Every value of SCOPES equals a fresh count (a Redis error is shown, not raised)."""
    try:
        return settled(client, settings, pg, [(kind, s) for s in SCOPES for kind in Kind])
    except redis.RedisError as error:
        return Settled(f"{type(error).__name__}: {error}")


def wait_repaired(client: redis.Redis, settings: Settings, pg: Engine, since: float) -> None:
    wait_until(
        lambda: exact(client, settings, pg),
        "every value of every scope to equal a fresh count",
        timeout=max(since + REPAIRED_WITHIN - time.monotonic(), 1.0),
    )


def test_deltas_the_promoted_replica_never_got_are_repaired_by_a_pass_sent_at_once(
    settings: Settings, pg: Engine, topology: SentinelTopology, logs: list[dict]
) -> None:
    """An email created and published with its txid: its deltas reach the primary only; the
    primary dies, the replica is promoted without them; the publisher's watch finds its count
    lower there and sends `warm_all`, which the worker runs."""
    settings = replace(settings, redis_url=topology.url(0), broker_url=topology.url(1))
    warmed(settings, pg)
    client = make_redis(settings.redis_url, 5.0)
    publisher = EventPublisher(settings)
    sessions = tracked_sessions(pg, publisher, deltas=True)
    try:
        with worker_process(settings):

            def lost_write() -> None:
                with sessions.begin() as session:
                    session.add(new_email(1, 2))
                primary = redis.Redis(port=topology.primary.port)
                try:
                    wait_until(lambda: exact(primary, settings, pg), "the deltas on the primary")
                finally:
                    primary.close()

            topology.fail_over_losing(lost_write)
            wait_repaired(client, settings, pg, time.monotonic())
        assert any(e["event"] == "redis.writes_lost" for e in logs), "no redis.writes_lost"
    finally:
        publisher.close()
        client.close()


def test_deltas_lost_with_a_lone_redis_restarted_empty_are_repaired_at_once(
    settings: Settings, pg: Engine, logs: list[dict]
) -> None:
    """The cache Redis (the broker apart) restarted with nothing after deltas were applied:
    every value is back, exact, without waiting for a pass."""
    with RedisServer() as server:
        settings = replace(settings, redis_url=server.url)
        warmed(settings, pg)
        client = redis.Redis.from_url(server.url)
        publisher = EventPublisher(settings)
        sessions = tracked_sessions(pg, publisher, deltas=True)
        try:
            with worker_process(settings):
                with sessions.begin() as session:
                    session.add(new_email(2, 1))
                wait_until(lambda: exact(client, settings, pg), "the deltas applied")
                server.stop()
                server.start()
                wait_repaired(client, settings, pg, time.monotonic())
            assert any(e["event"] == "redis.writes_lost" for e in logs), "no redis.writes_lost"
        finally:
            publisher.close()
            client.close()


def test_a_batch_that_failed_while_redis_was_down_is_repaired_once_it_is_back(
    settings: Settings, pg: Engine, logs: list[dict]
) -> None:
    """The cache Redis (the broker apart) is down when a committed change is published: the
    publish fails (logged, the commit stands), and once Redis answers again the publisher's
    watch sends the pass it owes, without waiting for the schedule."""
    with RedisServer() as server:
        settings = replace(settings, redis_url=server.url, redis_timeout_seconds=0.5)
        warmed(settings, pg)
        client = redis.Redis.from_url(server.url)
        publisher = EventPublisher(settings)
        sessions = tracked_sessions(pg, publisher, deltas=True)
        try:
            with worker_process(settings):
                server.stop()
                with sessions.begin() as session:
                    session.add(new_email(1, 1))
                wait_until(
                    lambda: any(e["event"] == "event.publish_failed" for e in logs),
                    "the publish to fail while Redis is down",
                )
                server.start()
                wait_repaired(client, settings, pg, time.monotonic())
            assert any(e["event"] == "redis.write_failed_repair" for e in logs), logs[-5:]
        finally:
            publisher.close()
            client.close()
