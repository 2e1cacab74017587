"""Beat as a singleton: RedBeat's Redis-stored schedule, led by whoever holds a Redis lock.

Every beat process ticks, but only the holder of the lock sends. A standby tries to take the lock
each loop (`beat_max_loop_interval`); the leader renews it each tick. If the leader dies the lock
expires after `redbeat_lock_timeout` and a standby takes over within one more loop, continuing
the same schedule (its last run time is kept in Redis, so nothing is sent twice).

RedBeat itself takes the lock once, blocking, at start-up, and lets beat crash when the lock or
Redis is lost. Here the lock is (re)taken in every tick instead, a Redis error skips one tick,
and the static schedule is (re)installed whenever leadership is gained, because a Redis restart
without persistence loses the schedule along with the lock. No beat process needs a restart.
"""

from __future__ import annotations

from typing import Any

from redbeat import RedBeatScheduler
from redbeat.schedulers import get_redis
from redis.exceptions import LockNotOwnedError, RedisError

from dashcache.logging import get_logger, redact

log = get_logger(__name__)


class SingletonScheduler(RedBeatScheduler):
    """RedBeat's scheduler with leader election in every tick; see the module docstring."""

    def __init__(self, app: Any, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.lock_name = str(app.redbeat_conf.lock_key)
        # With no lock key, RedBeat neither takes the lock at start-up nor renews it in `tick`.
        self.lock_key = None
        self.lock = get_redis(app).lock(self.lock_name, timeout=self.lock_timeout)
        self.leading = False
        self.installed = False

    def setup_schedule(self) -> None:
        """Install the static schedule only once leading (see `_lead`), never at start-up."""

    def tick(self, **kwargs: Any) -> float:
        """Send what is due when leading; seconds until the next tick."""
        try:
            if self._lead():
                interval: float = super().tick(**kwargs)
                return interval
        except RedisError as error:
            # Leadership stays as it was: the next renewal tells whether the lock is still ours.
            log.warning("beat.redis_unavailable", error=redact(f"{type(error).__name__}: {error}"))
        return float(self.max_interval)

    def close(self) -> None:
        """Release the lock when leading, so a standby takes over within one loop."""
        if self.leading and self.lock is not None:
            self.leading = False
            try:
                self.lock.release()
            except RedisError as error:
                log.warning("beat.release_failed", error=redact(f"{type(error).__name__}: {error}"))
        self.lock = None
        super().close()

    def _lead(self) -> bool:
        """Renew or take the lock; install the schedule after taking it. True when leading."""
        if self.leading:
            try:
                self.lock.extend(self.lock_timeout, replace_ttl=True)
            except LockNotOwnedError:
                self.leading = False
                log.warning("beat.lock_lost", lock=self.lock_name)
        if not self.leading:
            if not self.lock.acquire(blocking=False):
                return False
            self.leading, self.installed = True, False
            log.info("beat.leading", lock=self.lock_name, lock_timeout=self.lock_timeout)
        if not self.installed:
            super().setup_schedule()
            self.installed = True
        return True
