"""What the results were measured on: machine, load, and the versions of everything involved."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil
import redis
from sqlalchemy import Engine, text

LIBRARIES = ("sqlalchemy", "psycopg2-binary", "redis", "hiredis", "celery", "kombu", "matplotlib")
"""Distributions whose versions are recorded ("redis" is redis-py, the client)."""


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, or the platform's processor string."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages."""
    return [round(value, 2) for value in os.getloadavg()]


def describe(engine: Engine, client: redis.Redis) -> dict[str, Any]:
    """Machine, load and versions, recorded with the results."""
    with engine.connect() as conn:
        postgres = conn.scalar(text("SHOW server_version"))
    info: dict[str, Any] = client.info("server")
    versions = {
        "python": platform.python_version(),
        "postgresql": postgres,
        "redis-server": info.get("redis_version"),
    }
    for library in LIBRARIES:
        try:
            versions[library] = metadata.version(library)
        except metadata.PackageNotFoundError:
            versions[library] = None
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "load_average_at_start": load_average(),
        "versions": versions,
    }
