"""Beat's schedule (recompute every scope each refresh period) and its singleton set-up."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from dashcache.config import Settings
from dashcache.dispatch import WARM_ALL
from dashcache.keys import KeySchema
from dashcache.redis_url import redbeat_redis


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """One entry; a run not started within one period is dropped, the next one replaces it."""
    period = settings.refresh_seconds
    return {
        "warm-every-scope": {
            "task": WARM_ALL,
            "schedule": timedelta(seconds=period),
            "options": {"queue": settings.schedule_queue, "expires": period},
        }
    }


def beat_loop_seconds(settings: Settings) -> int:
    """Beat's longest sleep: how often a standby tries the lock and the leader renews it."""
    return min(5, settings.refresh_seconds)


def beat_lock_seconds(settings: Settings) -> int:
    """The leader lock's lifetime: five loops, so a slow tick never loses it by accident.

    A standby takes over at most this plus one loop after the leader dies (30 s by default).
    """
    return 5 * beat_loop_seconds(settings)


def beat_config(settings: Settings) -> dict[str, Any]:
    """Celery settings of the singleton beat: schedule and lock in the cache Redis."""
    timeout = max(settings.redis_timeout_seconds, 5.0)
    redbeat_url, redbeat_options = redbeat_redis(
        settings.redis_url,
        {"socket_timeout": timeout, "socket_connect_timeout": timeout, "health_check_interval": 30},
    )
    return {
        "beat_schedule": beat_schedule(settings),
        "beat_scheduler": "dashcache.worker.beat:SingletonScheduler",
        "beat_max_loop_interval": beat_loop_seconds(settings),
        "redbeat_redis_url": redbeat_url,
        "redbeat_key_prefix": KeySchema(settings.key_prefix).beat,
        "redbeat_lock_timeout": beat_lock_seconds(settings),
        "redbeat_redis_options": redbeat_options,
    }
