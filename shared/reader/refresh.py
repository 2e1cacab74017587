"""Ask the worker, in the background, to refresh a scope a reader found stale.

At most one request per scope per interval, across every process: a `SET NX PX` marker decides
who asks. The message is then sent by name (`dashcache.warm_scope`) to the events queue from one
background thread per process, so a slow or dead broker never delays a read; a failure is logged
and dropped (the marker expires, the next stale read after it asks again, and the schedule heals
the value anyway). A request expires after one interval, so a backlog is not replayed.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import redis

from dashcache.config import Settings
from dashcache.dispatch import WARM_SCOPE, TaskSender
from dashcache.keys import KeySchema, Scope
from dashcache.logging import get_logger

log = get_logger(__name__)


class RefreshSender:
    """Sends `warm_scope` from one background thread per process (the Celery client is built
    there too, so no caller waits for it); a failure is logged and dropped."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.interval = settings.refresh_seconds
        self._sender: TaskSender | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def send_later(self, account_id: Scope) -> None:
        """Queue one `warm_scope` of the scope for the background thread; returns at once."""
        self._background().submit(self._send, account_id)

    def close(self) -> None:
        """Wait for requests in flight, then release the broker connections."""
        with self._lock:
            if self._pool is not None and self._pid == os.getpid():
                self._pool.shutdown(wait=True)
            if self._sender is not None:
                self._sender.close()
            self._pool = self._sender = None

    def _background(self) -> ThreadPoolExecutor:
        # A pool inherited through fork has no thread behind it: start one per process.
        with self._lock:
            if self._pool is None or self._pid != os.getpid():
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="dashcache-refresh")
                self._sender = None
                self._pid = os.getpid()
            return self._pool

    def _send(self, account_id: Scope) -> None:
        try:
            if self._sender is None:  # only this pool's one thread builds it
                self._sender = TaskSender(self.settings)
            self._sender.send(
                WARM_SCOPE, [account_id], self.settings.events_queue, expires=self.interval
            )
        except Exception as error:  # any broker failure: the next interval asks again
            log.warning(
                "reader.refresh_failed",
                account_id=account_id,
                error=f"{type(error).__name__}: {error}",
            )
        else:
            log.debug("reader.refresh_requested", account_id=account_id)


class RefreshRequester(RefreshSender):
    """Sends `warm_scope` for stale scopes, at most once per scope per `refresh_seconds`."""

    def __init__(self, settings: Settings, client: redis.Redis, keys: KeySchema) -> None:
        super().__init__(settings)
        self.client = client
        self.keys = keys

    def request(self, account_id: Scope) -> bool:
        """Ask for a refresh unless one was asked for within the interval; True if asked now.

        Costs one Redis round trip; raises `redis.RedisError` like any Redis call.
        """
        marker = self.keys.refresh(account_id)
        if not self.client.set(marker, b"1", nx=True, px=self.interval * 1000):
            return False
        self.send_later(account_id)
        return True
