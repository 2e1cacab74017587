"""The asyncio reader's Redis health: the same breaker and outage logs as redis_health.py, one
per reader whatever the event loop, with the background PING run as a task on the loop of the
read that found it due, with that loop's client."""

from __future__ import annotations

import asyncio

import redis
from redis import asyncio as aioredis

from dashcache.reader.redis_health import HealthTracker


class AsyncRedisHealth(HealthTracker):
    """Tracks the health of a reader's Redis; its probes are tasks of the loops' own sets."""

    def probe_if_due(self, client: aioredis.Redis, probes: set[asyncio.Task[None]]) -> None:
        """While the breaker is open, PING Redis with `client` in a background task once per
        breaker period; the task stays in `probes` (the running loop's) until it is done."""
        if self.probe_due():
            probe = asyncio.get_running_loop().create_task(
                self._probe(client), name="dashcache-probe"
            )
            probes.add(probe)
            probe.add_done_callback(probes.discard)

    async def _probe(self, client: aioredis.Redis) -> None:
        try:
            await client.ping()
        except redis.RedisError as error:
            self.failed(error)
        else:
            self.ok()
