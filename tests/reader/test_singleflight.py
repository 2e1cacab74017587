"""Single-flight locks and waits on the real Redis."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from dashcache.errors import DashboardUnavailable
from dashcache.keys import KeySchema
from dashcache.reader.singleflight import ERROR, SingleFlight
from tests.helpers import subscribers, wait_until

LOCK_SECONDS = 60
"""Far longer than any of these tests: a held lock never expires under a test by accident."""


@pytest.fixture
def flight(redis_client: redis.Redis, key_prefix: str) -> SingleFlight:
    return SingleFlight(
        redis_client, KeySchema(key_prefix), lock_seconds=LOCK_SECONDS, poll_seconds=0.05
    )


def test_one_holder_and_lock_expires(flight: SingleFlight, redis_client: redis.Redis) -> None:
    """A second acquire fails while the lock is held; the lock carries the expiry."""
    lease = flight.try_acquire(7)
    assert lease is not None
    assert flight.try_acquire(7) is None
    assert 0 < redis_client.pttl(lease.key) <= LOCK_SECONDS * 1000
    assert flight.try_acquire(8) is not None


def test_release_only_deletes_own_lock(flight: SingleFlight, redis_client: redis.Redis) -> None:
    """A holder whose lock expired and was taken over cannot release the successor's lock."""
    first = flight.try_acquire(None)
    assert first is not None
    redis_client.delete(first.key)  # as if it expired
    second = flight.try_acquire(None)
    assert second is not None
    assert not flight.release(first)
    assert redis_client.get(second.key) == second.token.encode()
    assert flight.release(second)
    assert flight.try_acquire(None) is not None


def test_waiter_wakes_on_publish(flight: SingleFlight, redis_client: redis.Redis) -> None:
    """A waiter returns the value the holder wrote, once the holder releases."""
    lease = flight.try_acquire(1)
    assert lease is not None
    value_key = f"{flight.keys.prefix}:value"
    channel = flight.keys.filled(1)

    def holder() -> None:
        wait_until(lambda: subscribers(redis_client, channel), "the waiter to subscribe")
        redis_client.set(value_key, b"42")
        flight.release(lease)

    thread = threading.Thread(target=holder)
    thread.start()
    got = flight.wait(1, lambda: redis_client.get(value_key), time.monotonic() + 60)
    thread.join()
    assert got == b"42"


def test_waiter_gets_holders_error(flight: SingleFlight, redis_client: redis.Redis) -> None:
    """A holder's failure reaches its waiters as DashboardUnavailable with the reason: release
    publishes it on the scope's channel, and a waiter reading it raises."""
    lease = flight.try_acquire(2)
    assert lease is not None
    channel = flight.keys.filled(2)
    listener = redis_client.pubsub()
    listener.subscribe(channel)
    confirmed = listener.get_message(timeout=30)  # subscribed before the release
    assert confirmed is not None
    assert confirmed["type"] == "subscribe"
    flight.release(lease, f"{ERROR}database down")
    published = listener.get_message(timeout=30)
    listener.close()
    assert published is not None
    assert published["data"] == f"{ERROR}database down".encode()

    assert flight.try_acquire(2) is not None
    sent = []

    def fetch() -> None:  # runs once the waiter is subscribed, while the lock is held
        if not sent:
            sent.append(redis_client.publish(channel, published["data"]))

    with pytest.raises(DashboardUnavailable, match="database down"):
        flight.wait(2, fetch, time.monotonic() + 30)
    assert sent == [1]


def test_waiter_gets_the_error_of_a_holder_that_released_before_its_next_check(
    flight: SingleFlight, redis_client: redis.Redis
) -> None:
    """A failure released after the waiter subscribed reaches it, even when the lock is already
    gone at the waiter's next look."""
    lease = flight.try_acquire(2)
    assert lease is not None
    released = []

    def fetch() -> None:  # runs once the waiter is subscribed, before it looks at the lock
        if not released:
            released.append(flight.release(lease, f"{ERROR}database down"))

    with pytest.raises(DashboardUnavailable, match="database down"):
        flight.wait(2, fetch, time.monotonic() + 30)
    assert released == [True]


def test_waiter_gives_up_at_deadline(flight: SingleFlight) -> None:
    """A holder that never finishes makes waiters raise DashboardUnavailable at their deadline."""
    assert flight.try_acquire(3) is not None
    with pytest.raises(DashboardUnavailable, match="DASHCACHE_WAIT_SECONDS"):
        flight.wait(3, lambda: None, time.monotonic() + 0.3)


def test_waiter_returns_none_when_lock_is_free(flight: SingleFlight) -> None:
    """With neither a value nor a holder, the waiter returns None so the caller takes the lock."""
    assert flight.wait(4, lambda: None, time.monotonic() + 10) is None
