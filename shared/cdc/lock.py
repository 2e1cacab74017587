"""One consumer per slot: a lock in Redis that the active consumer renews; standbys wait on it.

The holder's id is the value; a renewal extends the TTL only while the value is still its own
(a consumer that stalled past the TTL finds the lock gone and stops consuming). A standby tries
to take it every second, so it takes over at most the TTL and a second after the holder died.
PostgreSQL itself refuses a second consumer on an active slot; the lock keeps standbys from
hammering it, and from running the start-up pass twice.
"""

from __future__ import annotations

import threading
import time

import redis

from dashcache.logging import get_logger

log = get_logger(__name__)

# KEYS: lock. ARGV: holder id, ttl ms. 1 when extended, 0 when held by another or gone.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

# KEYS: lock. ARGV: holder id. Deletes the lock only when still held by this holder.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

STANDBY_POLL_SECONDS = 1.0


class ConsumerLock:
    """The lock of one slot, held by `holder` while a background thread renews it."""

    def __init__(self, client: redis.Redis, key: str, holder: str, ttl_seconds: float) -> None:
        self.client = client
        self.key = key
        self.holder = holder
        self.ttl_ms = int(ttl_seconds * 1000)
        self.lost = threading.Event()
        """Set when a renewal found the lock gone or taken: stop consuming at once."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    def try_acquire(self) -> bool:
        """Take the lock if free; start renewing it when taken."""
        if not self.client.set(self.key, self.holder, nx=True, px=self.ttl_ms):
            return False
        self.lost.clear()
        self._stop.clear()
        self._thread = threading.Thread(target=self._keep, name="dashcache-cdc-lock", daemon=True)
        self._thread.start()
        return True

    def wait(self, stop: threading.Event) -> bool:
        """Wait as a standby until the lock is taken (True) or `stop` is set (False)."""
        announced = False
        while not stop.is_set():
            try:
                if self.try_acquire():
                    return True
                if not announced:
                    current = self.client.get(self.key)
                    holder = current.decode() if isinstance(current, bytes) else current
                    log.info("cdc.standby", holder=holder)
                    announced = True
            except redis.RedisError as error:
                log.warning("cdc.lock_failed", error=f"{type(error).__name__}: {error}")
            stop.wait(STANDBY_POLL_SECONDS)
        return False

    def release(self) -> None:
        """Stop renewing and give the lock up (if still ours)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        try:
            self._release(keys=[self.key], args=[self.holder])
        except redis.RedisError as error:
            log.warning("cdc.lock_failed", error=f"{type(error).__name__}: {error}")

    def _keep(self) -> None:
        interval = self.ttl_ms / 3000
        deadline = time.monotonic() + self.ttl_ms / 1000
        while not self._stop.wait(interval):
            try:
                if not self._renew(keys=[self.key], args=[self.holder, self.ttl_ms]):
                    log.warning("cdc.lock_lost", holder=self.holder)
                    self.lost.set()
                    return
                deadline = time.monotonic() + self.ttl_ms / 1000
            except redis.RedisError as error:
                log.warning("cdc.lock_failed", error=f"{type(error).__name__}: {error}")
                if time.monotonic() >= deadline:
                    self.lost.set()
                    return
