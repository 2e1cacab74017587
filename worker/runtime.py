"""The worker process's connections, built on first use and rebuilt after a fork."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from sqlalchemy import Engine

from dashcache.config import Settings
from dashcache.events.publisher import EventPublisher
from dashcache.keys import KeySchema
from dashcache.metrics import Metrics, metrics_for
from dashcache.schema.check import engine_for
from dashcache.store import RedisStore, make_redis


@dataclass(frozen=True, slots=True)
class Runtime:
    """Settings plus the engine, store, event publisher and metrics recorder of one process."""

    settings: Settings
    engine: Engine
    store: RedisStore
    publisher: EventPublisher
    metrics: Metrics


@cache
def runtime() -> Runtime:
    """This process's runtime."""
    settings = Settings.from_env()
    client = make_redis(settings.redis_url, max(settings.redis_timeout_seconds, 5.0))
    keys = KeySchema(settings.key_prefix)
    store = RedisStore(client, keys, settings.ttl_seconds, settings.max_value_bytes)
    publisher = EventPublisher(settings, client=client)
    engine = engine_for(settings)
    return Runtime(settings, engine, store, publisher, metrics_for(settings))


def reset_runtime() -> None:
    """Forget connections inherited from a parent process (they must not be shared)."""
    if runtime.cache_info().currsize:
        runtime().engine.dispose(close=False)
    runtime.cache_clear()
