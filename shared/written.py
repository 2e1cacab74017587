"""Knowing when Redis lost a writer's writes: a count of its batches that Redis keeps for it.

After each batch a writer increments its own counter (`P:v1:writer:W`), on the same connection
and after the batch's writes, and remembers the highest reply. Redis (and a replica) apply
commands in one order, so a Redis that holds count `n` holds every batch whose increment
answered `n` or less. A Redis restarted empty holds no count; a promoted replica that missed
the last writes holds a lower one: in both cases `lost()` is true, and the writer knows it must
have its values repaired. Only the writer increments its counter, so no other writer's batches
after a failover can hide the loss.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
from collections.abc import Callable

import redis

from dashcache.keys import KeySchema
from dashcache.logging import get_logger

log = get_logger(__name__)

WATCH_SECONDS = 1.0
"""How often a writer's watch asks Redis whether it still holds the writer's count."""


class WriterRecord:
    """One process's count of its batches, in Redis under a key of its own (thread-safe)."""

    def __init__(self, client: redis.Redis, keys: KeySchema, ttl_seconds: int) -> None:
        self.client = client
        self.keys = keys
        self.ttl_seconds = ttl_seconds
        self._lock = threading.Lock()
        self._pid = 0
        self._key = ""
        self._acknowledged = 0

    @property
    def key(self) -> str:
        """This process's counter (a forked child gets one of its own, with nothing counted)."""
        with self._lock:
            self._own()
            return self._key

    def queue(self, pipe: redis.client.Pipeline) -> int:
        """Add the increment to `pipe`, after the batch's writes; its reply's position."""
        position = len(pipe)
        pipe.incr(self.key)
        pipe.expire(self.key, self.ttl_seconds)
        return position

    def acknowledge(self, count: object) -> None:
        """Remember an increment's reply: Redis said it holds that many batches."""
        with self._lock:
            self._own()
            self._acknowledged = max(self._acknowledged, int(count))  # type: ignore[call-overload]

    def count(self) -> None:
        """Count a batch written by other means (its own round trip, after the writes)."""
        pipe = self.client.pipeline(transaction=False)
        position = self.queue(pipe)
        self.acknowledge(pipe.execute()[position])

    def lost(self) -> tuple[int, int] | None:
        """(held, acknowledged) when Redis holds fewer of this writer's batches than it
        acknowledged (0 held: the counter is gone); None when it holds them all."""
        with self._lock:
            self._own()
            key, acknowledged = self._key, self._acknowledged
        if acknowledged == 0:
            return None
        raw = self.client.get(key)
        held = 0 if raw is None else int(raw)
        return (held, acknowledged) if held < acknowledged else None

    def forget(self, acknowledged: int) -> None:
        """The loss up to `acknowledged` is being repaired: compare only later batches."""
        with self._lock:
            if self._acknowledged <= acknowledged:
                self._acknowledged = 0

    def _own(self) -> None:
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._key = self.keys.writer(
                f"{socket.gethostname()}:{self._pid}:{secrets.token_hex(4)}"
            )
            self._acknowledged = 0


class LossWatch:
    """A daemon thread that checks a writer's record every `WATCH_SECONDS` and calls `repair`
    once per loss found (again next time when `repair` raised)."""

    def __init__(self, record: WriterRecord, repair: Callable[[], None], source: str) -> None:
        self.record = record
        self.repair = repair
        self.source = source
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._owed = False

    def ensure_running(self) -> None:
        """Start the thread if it is not running (also in a forked child)."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._run, name="dashcache-loss-watch", daemon=True
                )
                self._thread.start()

    def owe(self) -> None:
        """A write failed part way (Redis or the broker down, a failover under way): repair at
        the next check that can send it, as for a loss."""
        with self._lock:
            self._owed = True
        self.ensure_running()

    def check(self) -> bool:
        """Check once; True when a loss (or a failed write) was found and its repair sent."""
        with self._lock:
            owed, self._owed = self._owed, False
        if owed:
            log.warning("redis.write_failed_repair", source=self.source, writer=self.record.key)
            try:
                self.repair()
            except Exception:
                self.owe()
                raise
            return True
        found = self.record.lost()
        if found is None:
            return False
        held, acknowledged = found
        log.warning(
            "redis.writes_lost",
            source=self.source,
            writer=self.record.key,
            held=held,
            acknowledged=acknowledged,
        )
        self.repair()
        self.record.forget(acknowledged)
        return True

    def close(self) -> None:
        """Stop the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(WATCH_SECONDS):
            try:
                self.check()
            except (redis.RedisError, OSError) as error:
                log.debug("redis.loss_check_failed", error=f"{type(error).__name__}: {error}")
            except Exception as error:  # a failed repair is tried again at the next check
                log.warning("redis.repair_failed", source=self.source, error=str(error))
