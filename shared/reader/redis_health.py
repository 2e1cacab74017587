"""Whether the readers' Redis is usable: a circuit breaker, a background probe, outage logs.

After `breaker_failures` connection errors or timeouts in a row the breaker opens and `up` is
False: reads stop calling Redis. Once per `breaker_reset_seconds` a PING from a background thread
checks Redis again, so no read waits on it; its success closes the breaker. An error reply (an
OOM refusal under `noeviction`, say) means Redis is reachable: logged, not counted.
"""

from __future__ import annotations

import threading
import time

import redis

from dashcache.reader.breaker import CircuitBreaker, State
from dashcache.reader.throttle import ThrottledLog


class HealthTracker:
    """What the sync and asyncio readers' health share: the breaker's state and the outage logs;
    thread-safe. Subclasses add the background probe."""

    def __init__(self, breaker: CircuitBreaker, outages: ThrottledLog, fallback: str) -> None:
        self.breaker = breaker
        self.outages = outages
        self.fallback = fallback
        self.up = True
        """False while the breaker is open or half-open: do not call Redis. A plain attribute,
        kept in step with the breaker, because every read checks it."""

    def ok(self) -> None:
        """Record a call that Redis answered."""
        if self.breaker.succeeded():
            self.up = True
            self.outages.emit("info", "reader.redis_recovered")

    def failed(self, error: redis.RedisError) -> None:
        """Record a call that failed with `error`."""
        detail = f"{type(error).__name__}: {error}"
        if not isinstance(error, redis.ConnectionError | redis.TimeoutError):
            self.outages.emit("warning", "reader.redis_error", error=detail)
            return
        opened = self.breaker.failed(time.monotonic())
        self.up = self.breaker.state is State.CLOSED
        if opened:
            self.outages.emit(
                "warning",
                "reader.redis_unavailable",
                error=detail,
                retry_after_seconds=self.breaker.reset_seconds,
                serving_from=self.fallback,
            )

    def probe_due(self) -> bool:
        """True when the breaker lets a trial call through now (at most once per period)."""
        if self.breaker.state is State.CLOSED:
            self.up = True  # `up` fell behind a breaker closed by a racing caller
            return False
        return self.breaker.allows(time.monotonic())


class RedisHealth(HealthTracker):
    """Tracks one Redis client's health for the sync reader; thread-safe."""

    def __init__(
        self, client: redis.Redis, breaker: CircuitBreaker, outages: ThrottledLog, fallback: str
    ) -> None:
        super().__init__(breaker, outages, fallback)
        self.client = client

    def probe_if_due(self) -> None:
        """While the breaker is open, PING Redis in the background once per breaker period."""
        if self.probe_due():
            threading.Thread(target=self._probe, name="dashcache-redis-probe", daemon=True).start()

    def _probe(self) -> None:
        try:
            self.client.ping()
        except redis.RedisError as error:
            self.failed(error)
        else:
            self.ok()
