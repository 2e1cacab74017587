"""The asyncio twin of singleflight.py: the same lock key, token rule, release script and
pub/sub channel, so sync and asyncio readers of one deployment coalesce with each other.

A holder cancelled mid-computation (its request went away) still releases its lock, publishing
`abandoned`, so the waiters of every process take over at once instead of at the lock's expiry.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis
from redis import asyncio as aioredis

from dashcache.errors import DashboardUnavailable
from dashcache.keys import KeySchema, Scope
from dashcache.reader.redis_health import HealthTracker
from dashcache.reader.singleflight import (
    ABANDONED,
    DELIVERY_SECONDS,
    ERROR,
    OK,
    RELEASE_SCRIPT,
    Lease,
    raised_outcome,
    wait_expired,
)

T = TypeVar("T")


class AsyncSingleFlight:
    """Locks and waits for one deployment's scopes, on asyncio."""

    def __init__(
        self,
        client: aioredis.Redis,
        keys: KeySchema,
        lock_seconds: float,
        health: HealthTracker | None = None,
        poll_seconds: float = 0.25,
    ) -> None:
        self.client = client
        self.keys = keys
        self.lock_ms = int(lock_seconds * 1000)
        self.health = health
        self.poll_seconds = poll_seconds
        self._release = client.register_script(RELEASE_SCRIPT)

    async def run(
        self,
        account_id: Scope,
        fetch: Callable[[], Awaitable[T | None]],
        compute: Callable[[], Awaitable[T]],
        deadline: float,
    ) -> T:
        """The value of a scope, computed by at most one caller at a time across processes.

        As `SingleFlight.run`; a cancelled holder releases its lock with `abandoned`.
        """
        while (lease := await self.try_acquire(account_id)) is None:
            waited = await self.wait(account_id, fetch, deadline)
            if waited is not None:
                return waited
        outcome: str | None = OK
        try:
            found = await fetch()  # written by another reader between our miss and our lock
            return await compute() if found is None else found
        except DashboardUnavailable as error:
            outcome = f"{ERROR}{error}"
            raise
        except redis.RedisError:
            outcome = None  # Redis is failing: do not wait on it again, the lock expires
            raise
        except asyncio.CancelledError:
            outcome = ABANDONED
            raise
        finally:
            if outcome is not None and (self.health is None or self.health.up):
                await self._release_quietly(lease, outcome)

    async def _release_quietly(self, lease: Lease, outcome: str) -> None:
        """Release; a Redis failure here is only recorded (the lock expires by itself)."""
        try:
            await self.release(lease, outcome)
        except redis.RedisError as error:
            if self.health is None:
                raise
            self.health.failed(error)

    async def try_acquire(self, account_id: Scope) -> Lease | None:
        """The lock of a scope if nobody holds it, else None."""
        key, token = self.keys.lock(account_id), secrets.token_hex(16)
        if await self.client.set(key, token, nx=True, px=self.lock_ms):
            return Lease(account_id, key, token)
        return None

    async def release(self, lease: Lease, outcome: str = OK) -> bool:
        """Release if still ours and publish `outcome`; False when the lock had expired."""
        channel = self.keys.filled(lease.account_id)
        return bool(await self._release(keys=[lease.key], args=[lease.token, channel, outcome]))

    async def wait(
        self, account_id: Scope, fetch: Callable[[], Awaitable[T | None]], deadline: float
    ) -> T | None:
        """Wait for another reader's value of this scope, as `SingleFlight.wait`."""
        pubsub = self.client.pubsub()
        try:
            await pubsub.subscribe(self.keys.filled(account_id))
            lock = self.keys.lock(account_id)
            while True:
                found = await fetch()
                if found is not None:
                    return found
                if not await self.client.exists(lock):
                    # Released between the fetch and this look: as in `SingleFlight.wait`.
                    found = await fetch()
                    if found is None:
                        await listen(pubsub, DELIVERY_SECONDS)
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise wait_expired()
                await listen(pubsub, min(self.poll_seconds, remaining))
        finally:
            await pubsub.aclose()


async def listen(pubsub: Any, timeout: float) -> None:
    """The asyncio twin of `singleflight.listen`."""
    end = time.monotonic() + timeout
    while (left := end - time.monotonic()) > 0:
        message = await pubsub.get_message(timeout=left)
        if message is None or raised_outcome(message):
            return
