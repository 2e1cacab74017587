"""A closed publisher refuses events with a typed error instead of queueing them for no thread."""

from __future__ import annotations

import pytest
import redis
from sqlalchemy import Engine

from dashcache import clock
from dashcache.config import Settings
from dashcache.errors import DashcacheError, PublisherClosed
from dashcache.events import EmailCreated, EmailRow, EventPublisher
from dashcache.keys import KeySchema, Kind
from dashcache.store import RedisStore
from tests.eventing import envelope
from tests.events.test_deltas import DAY, warm
from tests.helpers import add_categories


def test_publish_after_close_raises_and_queues_nothing(
    settings: Settings, pg: Engine, redis_client: redis.Redis
) -> None:
    """After close() both publish and publish_many raise PublisherClosed; nothing is queued nor
    applied, while what was published before close() was sent."""
    add_categories(pg, ["work", "news"])
    store = RedisStore(redis_client, KeySchema(settings.key_prefix), settings.ttl_seconds)
    warm(pg, store, settings)
    publisher = EventPublisher(settings)
    row = EmailRow(None, True, False, clock.now() - 40 * DAY)
    publisher.publish(EmailCreated(1, 5000, row, txid=2**40))
    publisher.close()
    total = envelope(redis_client, settings, Kind.AGGREGATES, 1)["data"]["total_emails"]
    late = [EmailCreated(1, 5001, row, txid=2**40 + 1)]
    with pytest.raises(PublisherClosed, match="closed"):
        publisher.publish(late[0])
    with pytest.raises(DashcacheError, match="closed"):
        publisher.publish_many(late)
    assert publisher.batcher._buffer == []
    assert publisher.flush(5)
    assert total == 2 + 1
    assert envelope(redis_client, settings, Kind.AGGREGATES, 1)["data"]["total_emails"] == total
