"""The asyncio reader's background refresh requests: the same `SET NX PX` marker as
shared/reader/refresh.py, taken with `redis.asyncio`; the message goes out from the same background
thread, so no broker call runs on the event loop."""

from __future__ import annotations

from redis import asyncio as aioredis

from dashcache.config import Settings
from dashcache.keys import KeySchema, Scope
from dashcache.reader.refresh import RefreshSender


class AsyncRefreshRequester(RefreshSender):
    """Sends `warm_scope` for stale scopes, at most once per scope per `refresh_seconds`; one per
    reader, whatever the event loop (the marker is taken with that loop's client)."""

    def __init__(self, settings: Settings, keys: KeySchema) -> None:
        super().__init__(settings)
        self.keys = keys

    async def request(self, client: aioredis.Redis, account_id: Scope) -> bool:
        """Ask for a refresh unless one was asked for within the interval; True if asked now.

        Costs one Redis round trip on `client`; raises `redis.RedisError` like any Redis call.
        """
        marker = self.keys.refresh(account_id)
        if not await client.set(marker, b"1", nx=True, px=self.interval * 1000):
            return False
        self.send_later(account_id)
        return True
