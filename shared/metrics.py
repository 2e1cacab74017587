"""Recording metrics: counts kept in process, flushed to one Redis hash in the background.

    metrics = metrics_for(settings)            # one per process and deployment; thread-safe
    metrics.record_read(Kind.AGGREGATES, "hit")
    metrics.record_recompute("schedule", "written", duration_s=0.41, fenced=0)
    metrics.record_event("received")
    metrics.record_scheduled_run(clock.now())

A record call only adds to a dict under a lock: no I/O on the caller's path. A daemon thread
flushes the pending counts every `metrics_flush_seconds` with one MULTI/EXEC pipeline of HINCRBY
(and at exit). A failed flush never raises: its counts go back to pending and are sent by the
next one. Labels come from closed sets, so pending holds at most one entry per hash field
(about a hundred) however long Redis is away.

Hash fields of `P:v1:metrics` (label values in the sets below):
    reads:<kind>:<read outcome>             reads served, by key kind and outcome
    recomputes:<trigger>:<outcome>          recomputes finished or failed
    recompute_seconds:<trigger>:<le>        recomputes with duration in (previous le, le]
    recompute_seconds_sum:<trigger>         their total duration (float)
    fenced_writes:<trigger>                 values the generation fence rejected
    events:<event outcome>                  mutation events by what became of them
    drift:<kind>:<trigger>                  values a recompute found wrong and repaired
    pass:warmed, pass:idle_dropped          scopes the scheduled pass's shards warmed, and left
                                            out as idle (dashcache.reads)
    last_scheduled_run                      unix time of the last successful scheduled run

The same flush adds the minute's event counts to the per-minute series
`P:v1:series:<name>:<minute>` (INCRBY, EX 2 h; the status page draws the last hour):
    events_received, events_applied          events:received, events:applied
    events_recomputed                        recomputes:event:* (event-triggered recomputes)
"""

from __future__ import annotations

import atexit
import bisect
import os
import threading
import weakref
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import datetime
from functools import cache
from typing import Literal

import redis

from dashcache import clock
from dashcache.config import Settings
from dashcache.errors import InvalidArgument
from dashcache.keys import KeySchema, Kind, Scope
from dashcache.logging import get_logger
from dashcache.store import Drift, make_redis

log = get_logger(__name__)

ReadOutcome = Literal["hit", "miss", "fallback", "fresh", "stale", "error"]
Trigger = Literal["schedule", "event", "fallback", "fresh", "warm", "cdc"]
RecomputeOutcome = Literal["written", "fenced", "error"]
EventOutcome = Literal["received", "coalesced", "dead_lettered", "applied", "duplicate", "failed"]

KIND_LABELS = {Kind.AGGREGATES: "aggregates", Kind.BREAKDOWN: "breakdown"}
READ_OUTCOMES: tuple[ReadOutcome, ...] = ("hit", "miss", "fallback", "fresh", "stale", "error")
_READ_FIELDS = {
    (kind, outcome): f"reads:{label}:{outcome}"
    for kind, label in KIND_LABELS.items()
    for outcome in READ_OUTCOMES
}
"""The counter field of each read; looked up, not formatted, on every hit."""
_HIT_FIELDS = {kind: _READ_FIELDS[(kind, "hit")] for kind in KIND_LABELS}
READ_MARK_SECONDS = 3600.0
"""A process notes an account read by hits in `P:v1:reads` at most once an hour."""
MARKED_ACCOUNTS = 100_000
"""Accounts whose last mark a process remembers (forgotten all at once past it)."""
TRIGGERS: tuple[Trigger, ...] = ("schedule", "event", "fallback", "fresh", "warm", "cdc")
"""What started a recompute: the scheduled pass, an event run, a reader's fallback, a fresh read,
`dashcache warm`, the WAL source's own pass (after a gap in the stream, or a category change)."""
RECOMPUTE_OUTCOMES: tuple[RecomputeOutcome, ...] = ("written", "fenced", "error")
EVENT_OUTCOMES: tuple[EventOutcome, ...] = (
    "received",
    "coalesced",
    "dead_lettered",
    "applied",
    "duplicate",
    "failed",
)
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
"""Upper bounds (seconds) of the recompute duration histogram; `inf` follows the last."""
BUCKET_LABELS = (*(repr(bound) for bound in BUCKETS), "inf")
LAST_SCHEDULED_RUN = "last_scheduled_run"
PASS_OUTCOMES = ("warmed", "idle_dropped")
"""What became of the scopes the scheduled pass met (`pass:<outcome>` fields)."""
SERIES_SECONDS = 7200
"""Lifetime of a per-minute series key: two hours, so the last hour is always complete."""
SERIES_SOURCES = {
    "events_received": ("events:received",),
    "events_applied": ("events:applied",),
    "events_recomputed": tuple(f"recomputes:event:{o}" for o in RECOMPUTE_OUTCOMES),
}
"""Per-minute series -> the hash fields whose flushed counts it adds up."""

# KEYS: the hash. ARGV: field, unix time. Keeps the larger of the stored and the given time.
_SET_MAX = """
local current = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if tonumber(ARGV[2]) > current then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return 1
"""

_recorders: weakref.WeakSet[Metrics] = weakref.WeakSet()


class Metrics:
    """The metrics recorder of one process for one deployment (key prefix)."""

    def __init__(self, client: redis.Redis, keys: KeySchema, flush_seconds: float) -> None:
        self.client = client
        self.keys = keys
        self.flush_seconds = flush_seconds
        self._set_max = client.register_script(_SET_MAX)
        self._reset()
        _recorders.add(self)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._counts: Counter[str] = Counter()
        self._sums: defaultdict[str, float] = defaultdict(float)
        self._last_run = 0.0
        self._read: set[int] = set()
        self._marked: dict[int, float] = {}
        self._thread: threading.Thread | None = None
        self._failing = False

    @property
    def enabled(self) -> bool:
        """False when `metrics_flush_seconds` is 0: record calls then do nothing."""
        return self.flush_seconds > 0

    def record_read(self, kind: Kind, outcome: ReadOutcome) -> None:
        """Count one read of a `kind` value by how it was served (see README, Metrics)."""
        field = _READ_FIELDS.get((kind, outcome))
        if field is None:
            raise InvalidArgument(f"read outcome must be one of {READ_OUTCOMES}, got {outcome!r}")
        self._add(field)

    def record_recompute(
        self, trigger: Trigger, outcome: RecomputeOutcome, duration_s: float, fenced: int = 0
    ) -> None:
        """Count one recompute, its duration, and how many of its writes the fence rejected."""
        if trigger not in TRIGGERS or outcome not in RECOMPUTE_OUTCOMES:
            raise InvalidArgument(
                f"trigger must be one of {TRIGGERS} and outcome one of {RECOMPUTE_OUTCOMES}, "
                f"got {trigger!r}, {outcome!r}"
            )
        if not self.enabled:
            return
        bucket = BUCKET_LABELS[bisect.bisect_left(BUCKETS, duration_s)]
        with self._lock:
            self._counts[f"recomputes:{trigger}:{outcome}"] += 1
            self._counts[f"recompute_seconds:{trigger}:{bucket}"] += 1
            if fenced:
                self._counts[f"fenced_writes:{trigger}"] += fenced
            self._sums[f"recompute_seconds_sum:{trigger}"] += duration_s
            self._start_locked()

    def record_event(self, outcome: EventOutcome, count: int = 1) -> None:
        """Count mutation events by what became of them."""
        if outcome not in EVENT_OUTCOMES:
            raise InvalidArgument(f"event outcome must be one of {EVENT_OUTCOMES}, got {outcome!r}")
        if count:
            self._add(f"events:{outcome}", count)

    def record_drift(self, kind: Kind, trigger: Trigger, count: int = 1) -> None:
        """Count values of `kind` a recompute of `trigger` found wrong (and repaired)."""
        self._add(f"drift:{KIND_LABELS[kind]}:{trigger}", count)

    def count_drift(self, drift: Iterable[Drift], trigger: Trigger) -> None:
        """Each stored value a recompute found wrong (and repaired, by writing over it): logged
        with the fields that differed, and counted by kind and trigger."""
        for each in drift:
            log.warning(
                "recompute.drift",
                key=each.key,
                kind=each.kind.value,
                fields=each.fields,
                trigger=trigger,
            )
            self.record_drift(each.kind, trigger)

    def record_writes_lost(self, source: str) -> None:
        """Count a Redis found to have lost writes of `source` (`events`, `cdc`): each is
        repaired by a recompute."""
        self._add(f"redis:writes_lost:{source}")

    def record_wait_short(self) -> None:
        """Count a WAL transaction whose `WAIT` fewer replicas acknowledged than required."""
        self._add("cdc:wait_short")

    def record_pass_shard(self, warmed: int, idle_dropped: int) -> None:
        """Count the scopes a shard of the scheduled pass warmed, and those it dropped as idle."""
        self._add("pass:warmed", warmed)
        self._add("pass:idle_dropped", idle_dropped)

    def record_hit(self, kind: Kind, account_id: Scope) -> None:
        """Count a cache hit, and note its account as read (flushed to `P:v1:reads` with the
        counts, so the pass keeps warming it: no Redis call on the hit path)."""
        if self.flush_seconds <= 0:
            return
        with self._lock:
            self._counts[_HIT_FIELDS[kind]] += 1
            if account_id is not None:
                self._read.add(account_id)
            if self._thread is None:
                self._start_locked()

    def record_scheduled_run(self, finished_at: datetime) -> None:
        """Note a successful scheduled recompute (health checks how long ago the last one was)."""
        if not self.enabled:
            return
        with self._lock:
            self._last_run = max(self._last_run, finished_at.timestamp())
            self._start_locked()

    def flush(self) -> bool:
        """Send pending counts to Redis now; False (counts kept for later) when Redis fails."""
        with self._lock:
            counts, sums, last_run = self._counts, self._sums, self._last_run
            self._counts, self._sums, self._last_run = Counter(), defaultdict(float), 0.0
            read, self._read = self._read, set()
        now = clock.timestamp()
        read = {a for a in read if self._marked.get(a, 0.0) < now - READ_MARK_SECONDS}
        if not counts and not sums and not last_run and not read:
            return True
        try:
            pipe = self.client.pipeline(transaction=True)
            for field, count in counts.items():
                pipe.hincrby(self.keys.metrics, field, count)
            for field, total in sums.items():
                pipe.hincrbyfloat(self.keys.metrics, field, total)
            minute = int(clock.timestamp()) // 60 * 60
            for name, total in series_counts(counts).items():
                key = self.keys.series(name, minute)
                pipe.incrby(key, total)
                pipe.expire(key, SERIES_SECONDS)
            if read:
                pipe.zadd(self.keys.reads, {str(account): now for account in read})
            if last_run:
                self._set_max(
                    keys=[self.keys.metrics], args=[LAST_SCHEDULED_RUN, last_run], client=pipe
                )
            pipe.execute()
        except redis.RedisError as error:
            with self._lock:
                self._counts.update(counts)
                for field, total in sums.items():
                    self._sums[field] += total
                self._last_run = max(self._last_run, last_run)
                self._read |= read
            if not self._failing:
                log.warning("metrics.flush_failed", error=f"{type(error).__name__}: {error}")
            self._failing = True
            return False
        if len(self._marked) > MARKED_ACCOUNTS:
            self._marked.clear()
        self._marked.update(dict.fromkeys(read, now))
        if self._failing:
            log.info("metrics.flush_recovered")
        self._failing = False
        return True

    def close(self) -> None:
        """Stop the flushing thread and flush what is pending (best effort)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self.flush_seconds + 5)
        self.flush()
        self.client.close()

    def _add(self, field: str, count: int = 1) -> None:
        if self.flush_seconds <= 0:  # `enabled`, without a property call on every hit
            return
        with self._lock:
            self._counts[field] += count
            if self._thread is None:
                self._start_locked()

    def _start_locked(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="dashcache-metrics", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            try:
                self.flush()
            except Exception:  # keep flushing: an unexpected error must not end the thread
                log.exception("metrics.flush_crashed")


def series_counts(counts: Counter[str]) -> dict[str, int]:
    """The per-minute series a flush of `counts` adds to (only those with something to add)."""
    totals = {
        name: sum(counts[field] for field in fields) for name, fields in SERIES_SOURCES.items()
    }
    return {name: total for name, total in totals.items() if total}


@cache
def _shared(redis_url: str, prefix: str, timeout: float, flush_seconds: float) -> Metrics:
    client = make_redis(redis_url, timeout)
    return Metrics(client, KeySchema(prefix), flush_seconds)


def metrics_for(settings: Settings) -> Metrics:
    """This process's recorder for the deployment `settings` name (built on first use)."""
    return _shared(
        settings.redis_url,
        settings.key_prefix,
        settings.redis_timeout_seconds,
        settings.metrics_flush_seconds,
    )


def close_all() -> None:
    """Flush and stop every recorder of this process (at exit)."""
    for metrics in list(_recorders):
        try:
            metrics.close()
        except Exception:  # one broken recorder must not keep the others from flushing
            log.exception("metrics.flush_crashed")


def _forget_after_fork() -> None:
    """A forked child starts with no pending counts (the parent sends its own) and no thread."""
    for metrics in list(_recorders):
        metrics._reset()


atexit.register(close_all)
os.register_at_fork(after_in_child=_forget_after_fork)
