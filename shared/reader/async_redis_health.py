"""The asyncio reader's Redis health: the same breaker and outage logs as redis_health.py,
with the background PING run as a task on the reader's event loop instead of a thread."""

from __future__ import annotations

import asyncio

import redis
from redis import asyncio as aioredis

from dashcache.reader.breaker import CircuitBreaker
from dashcache.reader.redis_health import HealthTracker
from dashcache.reader.throttle import ThrottledLog


class AsyncRedisHealth(HealthTracker):
    """Tracks one asyncio Redis client's health; its probes are tasks the reader closes."""

    def __init__(
        self,
        client: aioredis.Redis,
        breaker: CircuitBreaker,
        outages: ThrottledLog,
        fallback: str,
    ) -> None:
        super().__init__(breaker, outages, fallback)
        self.client = client
        self._probes: set[asyncio.Task[None]] = set()

    def probe_if_due(self) -> None:
        """While the breaker is open, PING Redis in a background task once per breaker period."""
        if self.probe_due():
            probe = asyncio.get_running_loop().create_task(self._probe(), name="dashcache-probe")
            self._probes.add(probe)
            probe.add_done_callback(self._probes.discard)

    async def aclose(self) -> None:
        """Cancel the probes still running and wait for them."""
        probes = list(self._probes)
        for probe in probes:
            probe.cancel()
        await asyncio.gather(*probes, return_exceptions=True)

    async def _probe(self) -> None:
        try:
            await self.client.ping()
        except redis.RedisError as error:
            self.failed(error)
        else:
            self.ok()
