"""A circuit breaker: after repeated Redis failures, stop calling Redis for a while.

A pure state machine; the caller passes the (monotonic) time in, so it is tested without clocks.

    closed --failures in a row--> open --reset_seconds later--> half-open (one trial call)
    half-open --trial succeeds--> closed;  half-open --trial fails--> open again

Thread-safe. The closed-state checks read one attribute without locking, so a healthy hit path
pays almost nothing for the breaker.
"""

from __future__ import annotations

import threading
from enum import StrEnum


class State(StrEnum):
    """Where the breaker stands."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitBreaker:
    """Opens after `failures` consecutive failures; lets one trial through every `reset_seconds`."""

    def __init__(self, failures: int, reset_seconds: float) -> None:
        self.threshold = failures
        self.reset_seconds = reset_seconds
        self.state = State.CLOSED
        self._failures = 0
        self._since = 0.0
        self._lock = threading.Lock()

    def allows(self, now: float) -> bool:
        """True when a call may go to Redis; in half-open, only the one trial call is allowed."""
        if self.state is State.CLOSED:
            return True
        with self._lock:
            return self._allows_locked(now)

    def _allows_locked(self, now: float) -> bool:
        if self.state is State.CLOSED:  # closed by another thread since the unlocked check
            return True
        if now - self._since < self.reset_seconds:
            return False
        # Open long enough (or a half-open trial never reported back): one more trial.
        self.state = State.HALF_OPEN
        self._since = now
        return True

    def succeeded(self) -> bool:
        """Record a successful call; True when this closed an open or half-open breaker."""
        if self.state is State.CLOSED and self._failures == 0:
            return False
        with self._lock:
            recovered = self.state is not State.CLOSED
            self.state = State.CLOSED
            self._failures = 0
            return recovered

    def failed(self, now: float) -> bool:
        """Record a failed call; True when this opened the breaker."""
        with self._lock:
            self._failures += 1
            if self.state is State.HALF_OPEN or self._failures >= self.threshold:
                opened = self.state is not State.OPEN
                self.state = State.OPEN
                self._since = now
                return opened
            return False
