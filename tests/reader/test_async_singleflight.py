"""Asyncio single flight on the real Redis: locks and waits shared with the sync reader's, a
cancelled holder, and the in-process sharing of one task per key."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
import redis
from redis import asyncio as aioredis

from dashcache.errors import DashboardUnavailable
from dashcache.keys import KeySchema
from dashcache.reader.async_inflight import InFlight
from dashcache.reader.async_singleflight import AsyncSingleFlight
from dashcache.reader.singleflight import ERROR, SingleFlight
from tests.helpers import subscribers, wait_until, wait_until_async

T = TypeVar("T")
LOCK_SECONDS = 60
"""Far longer than any of these tests: a held lock only goes when released, never by expiry."""


def with_flight(
    redis_url: str, key_prefix: str, body: Callable[[AsyncSingleFlight], Awaitable[T]]
) -> T:
    """Run `body` with an asyncio flight on the test prefix (fast polling), client closed after."""

    async def main() -> T:
        client = aioredis.Redis.from_url(redis_url)
        try:
            flight = AsyncSingleFlight(client, KeySchema(key_prefix), LOCK_SECONDS, None, 0.05)
            return await body(flight)
        finally:
            await client.aclose()

    return asyncio.run(main())


@pytest.fixture
def sync_flight(redis_client: redis.Redis, key_prefix: str) -> SingleFlight:
    return SingleFlight(
        redis_client, KeySchema(key_prefix), lock_seconds=LOCK_SECONDS, poll_seconds=0.05
    )


def test_lock_is_shared_with_the_sync_reader(
    redis_url: str, key_prefix: str, sync_flight: SingleFlight, redis_client: redis.Redis
) -> None:
    """One lock per scope whichever reader takes it, with the expiry; a holder cannot release a
    successor's lock."""

    async def body(flight: AsyncSingleFlight) -> None:
        lease = await flight.try_acquire(7)
        assert lease is not None
        assert sync_flight.try_acquire(7) is None
        assert await flight.try_acquire(7) is None
        assert 0 < redis_client.pttl(lease.key) <= LOCK_SECONDS * 1000
        redis_client.delete(lease.key)  # as if it expired
        successor = sync_flight.try_acquire(7)
        assert successor is not None
        assert not await flight.release(lease)
        assert redis_client.get(successor.key) == successor.token.encode()

    with_flight(redis_url, key_prefix, body)


def test_async_waiter_wakes_on_sync_holders_publish(
    redis_url: str, key_prefix: str, sync_flight: SingleFlight, redis_client: redis.Redis
) -> None:
    """An asyncio waiter returns the value a sync holder wrote, once the holder releases."""
    lease = sync_flight.try_acquire(1)
    assert lease is not None
    value_key = f"{key_prefix}:value"
    channel = sync_flight.keys.filled(1)

    def holder() -> None:
        wait_until(lambda: subscribers(redis_client, channel), "the waiter to subscribe")
        redis_client.set(value_key, b"42")
        sync_flight.release(lease)

    async def body(flight: AsyncSingleFlight) -> bytes | None:
        thread = threading.Thread(target=holder)
        thread.start()
        try:
            return await flight.wait(1, lambda: flight.client.get(value_key), time.monotonic() + 60)
        finally:
            await asyncio.to_thread(thread.join)

    assert with_flight(redis_url, key_prefix, body) == b"42"


def test_waiter_gets_holders_error(
    redis_url: str, key_prefix: str, sync_flight: SingleFlight, redis_client: redis.Redis
) -> None:
    """A holder's failure reaches its asyncio waiters as DashboardUnavailable with the reason."""
    lease = sync_flight.try_acquire(2)
    assert lease is not None
    channel = sync_flight.keys.filled(2)

    def holder() -> None:  # fails once the waiter listens (a failure before that is not sent)
        wait_until(lambda: subscribers(redis_client, channel), "the waiter to subscribe")
        sync_flight.release(lease, f"{ERROR}database down")

    async def nothing() -> None:
        return None

    async def body(flight: AsyncSingleFlight) -> None:
        thread = threading.Thread(target=holder)
        thread.start()
        try:
            with pytest.raises(DashboardUnavailable, match="database down"):
                await flight.wait(2, nothing, time.monotonic() + 60)
        finally:
            await asyncio.to_thread(thread.join)

    with_flight(redis_url, key_prefix, body)


def test_waiter_gives_up_at_deadline_or_takes_a_free_lock(
    redis_url: str, key_prefix: str, sync_flight: SingleFlight
) -> None:
    """A holder that never finishes makes waiters raise at their deadline; with neither a value
    nor a holder, the waiter returns None so the caller takes the lock."""
    assert sync_flight.try_acquire(3) is not None

    async def nothing() -> None:
        return None

    async def body(flight: AsyncSingleFlight) -> None:
        with pytest.raises(DashboardUnavailable, match="DASHCACHE_WAIT_SECONDS"):
            await flight.wait(3, nothing, time.monotonic() + 0.3)
        assert await flight.wait(4, nothing, time.monotonic() + 10) is None

    with_flight(redis_url, key_prefix, body)


def test_cancelled_holder_releases_and_wakes_a_sync_waiter(
    redis_url: str, key_prefix: str, sync_flight: SingleFlight, redis_client: redis.Redis
) -> None:
    """A holder cancelled mid-computation deletes its lock and publishes `abandoned`: a sync
    waiter elsewhere returns at once (to take the lock over), long before the lock's expiry."""
    keys = KeySchema(key_prefix)
    lock, channel = keys.lock(5), keys.filled(5)
    woke: list[float] = []

    def waiter() -> None:
        sync_flight.wait(5, lambda: None, time.monotonic() + LOCK_SECONDS / 2)
        woke.append(time.monotonic())

    async def body(flight: AsyncSingleFlight) -> float:
        async def fetch() -> None:
            return None

        async def compute() -> str:
            await asyncio.sleep(60)
            return "never"

        holder = asyncio.create_task(flight.run(5, fetch, compute, time.monotonic() + 60))
        await wait_until_async(lambda: flight.client.exists(lock), "the holder to take the lock")
        thread = threading.Thread(target=waiter)
        thread.start()
        await wait_until_async(
            lambda: asyncio.to_thread(subscribers, redis_client, channel), "the waiter to subscribe"
        )
        cancelled = time.monotonic()
        holder.cancel()
        with pytest.raises(asyncio.CancelledError):
            await holder
        await asyncio.to_thread(thread.join, LOCK_SECONDS)
        return cancelled

    cancelled = with_flight(redis_url, key_prefix, body)
    assert not redis_client.exists(lock)
    assert len(woke) == 1, "the waiter gave up at its deadline: nothing woke it"
    assert woke[0] - cancelled < LOCK_SECONDS / 6  # at once, not at the lock's expiry


def test_inflight_shares_one_task_per_key() -> None:
    """Concurrent callers of one key share one run (and its error); another key runs apart."""
    starts: list[str] = []

    async def compute(key: str) -> str:
        starts.append(key)
        await asyncio.sleep(0.05)
        if key == "bad":
            raise DashboardUnavailable("no")
        return key.upper()

    async def main() -> tuple[list[str], list[str], list[object]]:
        inflight = InFlight()
        same = await asyncio.gather(*(inflight.share("a", lambda: compute("a")) for _ in range(20)))
        other = await asyncio.gather(inflight.share("b", lambda: compute("b")))
        failed = await asyncio.gather(
            *(inflight.share("bad", lambda: compute("bad")) for _ in range(5)),
            return_exceptions=True,
        )
        assert len(inflight) == 0
        return same, other, failed

    same, other, failed = asyncio.run(main())
    assert same == ["A"] * 20
    assert other == ["B"]
    assert all(isinstance(error, DashboardUnavailable) for error in failed)
    assert starts == ["a", "b", "bad"]


def test_inflight_cancels_its_task_when_the_last_caller_leaves() -> None:
    """The shared task lives while one caller waits for it; cancelling every caller cancels it,
    and a caller arriving afterwards starts a new one."""
    ends: list[str] = []

    async def compute() -> str:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            ends.append("cancelled")
            raise
        return "never"

    async def quick() -> str:
        return "new"

    async def main() -> str:
        inflight = InFlight()
        callers = [asyncio.create_task(inflight.share("k", compute)) for _ in range(3)]
        await asyncio.sleep(0.05)
        callers[0].cancel()
        await asyncio.sleep(0.05)
        assert (len(inflight), ends) == (1, [])
        for caller in callers[1:]:
            caller.cancel()
        await asyncio.gather(*callers, return_exceptions=True)
        await asyncio.sleep(0)
        assert (len(inflight), ends) == (0, ["cancelled"])
        result = await inflight.share("k", quick)
        assert asyncio.all_tasks() == {asyncio.current_task()}
        return result

    assert asyncio.run(main()) == "new"


def test_async_waiter_gets_the_error_of_a_holder_that_released_before_its_next_check(
    redis_url: str, key_prefix: str, sync_flight: SingleFlight
) -> None:
    """A failure released after the asyncio waiter subscribed reaches it, even when the lock is
    already gone at the waiter's next look."""
    lease = sync_flight.try_acquire(2)
    assert lease is not None
    released: list[bool] = []

    async def fetch() -> None:  # runs once the waiter is subscribed, before it looks at the lock
        if not released:
            released.append(sync_flight.release(lease, f"{ERROR}database down"))

    async def body(flight: AsyncSingleFlight) -> None:
        with pytest.raises(DashboardUnavailable, match="database down"):
            await flight.wait(2, fetch, time.monotonic() + 30)

    with_flight(redis_url, key_prefix, body)
    assert released == [True]
