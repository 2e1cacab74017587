"""Background batching of single `publish` calls: one Redis round trip per batch, not per event.

`add` only appends under a lock (validation happened before); a daemon thread sends what has
gathered after a short linger, or at once when a batch is full. `flush` waits until everything
added before it was sent. A batch that fails is logged (`event.publish_failed`) and counted
(`events:failed`); the schedule heals its values. Every batcher is flushed at a clean exit, and a
forked child starts empty (the parent sends its own). A closed batcher refuses new events
(`PublisherClosed`): nothing would send them.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from collections.abc import Callable

from dashcache.errors import PublisherClosed
from dashcache.events.types import Event
from dashcache.logging import get_logger

log = get_logger(__name__)

_batchers: weakref.WeakSet[Batcher] = weakref.WeakSet()


class Batcher:
    """Gathers events and sends them in batches from one daemon thread."""

    def __init__(
        self,
        send: Callable[[list[Event]], object],
        on_failure: Callable[[int], None],
        linger_seconds: float,
        max_batch: int,
    ) -> None:
        self.send = send
        self.on_failure = on_failure
        self.linger_seconds = linger_seconds
        self.max_batch = max_batch
        self._reset()
        _batchers.add(self)

    def _reset(self) -> None:
        self._lock = threading.Condition()
        self._buffer: list[Event] = []
        self._added = 0
        self._done = 0
        self._thread: threading.Thread | None = None
        self._closed = False

    def add(self, event: Event) -> None:
        """Queue one event for the next batch; `PublisherClosed` once the batcher is closed."""
        with self._lock:
            if self._closed:
                raise PublisherClosed("the event publisher is closed: the event was not queued")
            self._buffer.append(event)
            self._added += 1
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="dashcache-publish", daemon=True
                )
                self._thread.start()
            if len(self._buffer) == 1 or len(self._buffer) >= self.max_batch:
                self._lock.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event added so far was sent (or failed); False on timeout."""
        with self._lock:
            target = self._added
            self._lock.notify_all()
            return self._lock.wait_for(lambda: self._done >= target, timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Send what is pending and stop the thread."""
        self.flush(timeout)
        with self._lock:
            self._closed = True
            self._lock.notify_all()

    def _run(self) -> None:
        while True:
            with self._lock:
                self._lock.wait_for(lambda: self._buffer or self._closed)
                if not self._buffer:
                    return
                full = len(self._buffer) >= self.max_batch
            if not full:
                time.sleep(self.linger_seconds)
            with self._lock:
                batch = self._buffer[: self.max_batch]
                del self._buffer[: self.max_batch]
            self._send(batch)
            with self._lock:
                self._done += len(batch)
                self._lock.notify_all()

    def _send(self, batch: list[Event]) -> None:
        try:
            self.send(batch)
        except Exception as error:  # the thread must keep sending; the schedule heals
            log.error("event.publish_failed", events=len(batch), error=repr(error))
            self.on_failure(len(batch))


def flush_all() -> None:
    """Send what every batcher of this process holds (at exit)."""
    for batcher in list(_batchers):
        batcher.close()


def _forget_after_fork() -> None:
    for batcher in list(_batchers):
        batcher._reset()


atexit.register(flush_all)
os.register_at_fork(after_in_child=_forget_after_fork)
