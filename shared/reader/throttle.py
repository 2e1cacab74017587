"""Log an outage at most once per interval, not once per request."""

from __future__ import annotations

import threading
import time

from dashcache.logging import get_logger


class ThrottledLog:
    """Logs each event at most once per `interval` seconds, saying how many were held back."""

    def __init__(self, name: str, interval: float) -> None:
        self.log = get_logger(name)
        self.interval = interval
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    def emit(self, level: str, event: str, now: float | None = None, **fields: object) -> bool:
        """Log `event` at `level` ("info", "warning") unless it was logged within the interval
        before `now` (monotonic seconds; default: the current time); True if logged."""
        now = time.monotonic() if now is None else now
        with self._lock:
            last = self._last.get(event)
            if last is not None and now - last < self.interval:
                self._held[event] = self._held.get(event, 0) + 1
                return False
            self._last[event] = now
            held_back = self._held.pop(event, 0)
        getattr(self.log, level)(event, held_back=held_back, **fields)
        return True
