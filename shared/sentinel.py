"""Clients of the primary that Sentinel names (sync and asyncio), and which node that is.

A client from here asks the Sentinels for the primary before each new connection, and closes a
connection whose node turned out to be a replica (redis-py's `SentinelConnectionPool`), so after
a failover its next command reaches the new primary once Sentinel has named it.
"""

from __future__ import annotations

from typing import Any

import redis
from redis import asyncio as aioredis
from redis.asyncio import sentinel as async_sentinel
from redis.sentinel import Sentinel, SentinelConnectionPool

from dashcache.redis_url import SentinelUrl


def sentinel_options(url: SentinelUrl, options: dict[str, Any]) -> dict[str, Any]:
    """How the Sentinels themselves are asked: the same timeouts, TLS when the URL says so."""
    timeouts = {k: v for k, v in options.items() if k.startswith("socket_")}
    return {**timeouts, "ssl": url.tls, "protocol": 2}


def sentinel_client(url: SentinelUrl, options: dict[str, Any]) -> redis.Redis:
    """A client of the primary, with `options` (timeouts, retry, protocol) for its connections."""
    sentinels = Sentinel(
        list(url.sentinels),
        sentinel_kwargs=sentinel_options(url, options),
        password=url.password,
        ssl=url.tls,
        **options,
    )
    client: redis.Redis = sentinels.master_for(url.master, redis_class=_Primary, db=url.db)
    return client


def async_sentinel_client(url: SentinelUrl, options: dict[str, Any]) -> Any:
    """The asyncio twin of `sentinel_client` (a `redis.asyncio.Redis`)."""
    sentinels = async_sentinel.Sentinel(
        list(url.sentinels),
        sentinel_kwargs=sentinel_options(url, options),
        password=url.password,
        ssl=url.tls,
        **options,
    )
    return sentinels.master_for(url.master, redis_class=_AsyncPrimary, db=url.db)


class _Primary(redis.Redis):
    """The primary's client; closing it closes its clients of the Sentinels too."""

    def close(self) -> None:
        super().close()
        for client in self.connection_pool.sentinel_manager.sentinels:  # type: ignore[attr-defined]
            client.close()


class _AsyncPrimary(aioredis.Redis):
    """The asyncio primary's client; closing it closes its clients of the Sentinels too."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        for client in self.connection_pool.sentinel_manager.sentinels:  # type: ignore[attr-defined]
            await client.aclose()


def primary_of(client: redis.Redis) -> str:
    """The node `client` writes to now, `host:port`, and for a Sentinel client which master
    name it is (Sentinel is asked); raises `redis.RedisError` when no Sentinel knows it."""
    pool = client.connection_pool
    if isinstance(pool, SentinelConnectionPool):
        host, port = pool.get_master_address()  # type: ignore[no-untyped-call]
        return f"{host}:{port} (primary of {pool.service_name}, named by Sentinel)"
    kwargs = pool.connection_kwargs
    if "path" in kwargs:
        return str(kwargs["path"])
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"
