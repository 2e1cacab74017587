"""The asyncio reader's background refresh requests: the same `SET NX PX` marker as
shared/reader/refresh.py, taken with `redis.asyncio`; the message goes out from the same background
thread, so no broker call runs on the event loop."""

from __future__ import annotations

from redis import asyncio as aioredis

from dashcache.config import Settings
from dashcache.keys import KeySchema, Scope
from dashcache.reader.refresh import RefreshSender


class AsyncRefreshRequester(RefreshSender):
    """Sends `warm_scope` for stale scopes, at most once per scope per `refresh_seconds`."""

    def __init__(self, settings: Settings, client: aioredis.Redis, keys: KeySchema) -> None:
        super().__init__(settings)
        self.client = client
        self.keys = keys

    async def request(self, account_id: Scope) -> bool:
        """Ask for a refresh unless one was asked for within the interval; True if asked now.

        Costs one Redis round trip; raises `redis.RedisError` like any Redis call.
        """
        marker = self.keys.refresh(account_id)
        if not await self.client.set(marker, b"1", nx=True, px=self.interval * 1000):
            return False
        self.send_later(account_id)
        return True
