"""The asyncio twin of shared/store.py for the asyncio reader: the same client settings, tickets
and fenced write (the same script, planned by `FencedWritePlan`), on `redis.asyncio`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import redis
from redis import asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from dashcache.advance import ADVANCE_SCRIPT
from dashcache.fence import FENCED_WRITE_SCRIPT
from dashcache.keys import KeySchema, Kind, Scope
from dashcache.recompute import RecomputeResult
from dashcache.redis_url import is_sentinel, parse_sentinel_url
from dashcache.sentinel import async_sentinel_client
from dashcache.store import FencedWritePlan
from dashcache.windows import minute_of


def make_async_redis(url: str, timeout_seconds: float) -> aioredis.Redis:
    """An asyncio client configured like the sync reader's (`make_redis(..., False)`): explicit
    timeouts, RESP2, a broken connection retried once, a timeout never retried."""
    options: dict[str, Any] = {
        "socket_timeout": timeout_seconds,
        "socket_connect_timeout": timeout_seconds,
        "health_check_interval": 30,
        "retry": Retry(
            ExponentialBackoff(cap=0.2, base=0.01),
            retries=1,
            supported_errors=(redis.ConnectionError,),
        ),
        "protocol": 2,
    }
    if is_sentinel(url):
        client: aioredis.Redis = async_sentinel_client(parse_sentinel_url(url), options)
        return client
    return aioredis.Redis.from_url(url, **options)


class AsyncRedisStore:
    """Tickets and fenced writes of dashboard values under one key prefix, on asyncio."""

    def __init__(
        self,
        client: aioredis.Redis,
        keys: KeySchema,
        ttl_seconds: int,
        max_value_bytes: int | None = None,
    ) -> None:
        self.client = client
        self.keys = keys
        self.ttl_seconds = ttl_seconds
        self.max_value_bytes = max_value_bytes
        self._fenced_write = client.register_script(FENCED_WRITE_SCRIPT)
        self._advance = client.register_script(ADVANCE_SCRIPT)

    async def advance(self, account_id: Scope, now: datetime) -> bytes | None:
        """`RedisStore.advance` on asyncio: the aggregates envelope advanced to `now`'s minute,
        or None (recount)."""
        keys = [
            self.keys.value(Kind.AGGREGATES, account_id),
            self.keys.state(Kind.AGGREGATES, account_id),
        ]
        found: bytes | None = await self._advance(keys=keys, args=[minute_of(now)])
        return found or None

    async def take_ticket(self) -> int:
        """A new generation, greater than every one handed out before; take it before reading."""
        return int(await self.client.incr(self.keys.seq))

    async def write_result(self, result: RecomputeResult) -> RecomputeResult:
        """Write both kinds of every scope of `result` through the fence; count the outcome."""
        plan = FencedWritePlan.of(
            result.writes(), self.keys, self.ttl_seconds, self.max_value_bytes
        )
        replies = [
            await self._fenced_write(keys=keys, args=args)  # one call for a reader's scope
            for keys, args in plan.calls
        ]
        return result.with_written(plan.written(replies))
