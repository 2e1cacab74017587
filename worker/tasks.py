"""Celery tasks: thin wrappers over `shared`, each logging one line per run."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, overload

from redis import RedisError
from sqlalchemy.exc import SQLAlchemyError

from dashcache import clock
from dashcache.dispatch import INGEST_EVENTS, RECOMPUTE_TARGETS, WARM_ALL, WARM_SCOPE, WARM_SHARD
from dashcache.errors import InvalidEvent
from dashcache.events.coalesce import Claim
from dashcache.events.deadletter import dead_letter
from dashcache.events.ingest import ingest
from dashcache.events.runner import EventRun, check_run, recompute_targets, run_label
from dashcache.failures import failure_cause
from dashcache.keys import Scope, check_account_id, scope_token
from dashcache.logging import get_logger
from dashcache.metrics import Trigger
from dashcache.passes import PassMarkers, ShardTask, account_bounds, shard_ranges
from dashcache.reads import ReadMarks
from dashcache.recompute import RecomputeResult, recompute_every_scope, recompute_scope
from dashcache.worker.app import app
from dashcache.worker.runtime import runtime

log = get_logger(__name__)

RETRY = {
    "autoretry_for": (SQLAlchemyError, RedisError),
    "retry_backoff": 2,
    "retry_backoff_max": 30,
    "retry_jitter": True,
    "max_retries": 3,
}


@app.task(name=WARM_ALL, **RETRY)
def warm_all() -> int:
    """Split the scheduled pass into shards and send each as a `warm_shard` task (a shard whose
    previous one is still queued or running is not sent again); returns the shards sent."""
    rt = runtime()
    started = time.perf_counter()
    try:
        generation = rt.store.take_ticket()
        bounds = account_bounds(rt.engine, rt.store)
    except Exception as error:
        _failed("all", "schedule", started, error)
        raise
    shards = [ShardTask(generation, None, None)]
    if bounds is not None:
        ranges = shard_ranges(*bounds, rt.settings.shard_accounts)
        shards += [ShardTask(generation, low, high) for low, high in ranges]
    period = rt.settings.refresh_seconds

    def send(shard: ShardTask) -> None:
        warm_shard.apply_async(args=shard.args(), queue=rt.settings.schedule_queue, expires=period)

    sent = _markers().send(generation, shards, clock.now(), send)
    log.info("pass.sent", generation=generation, shards=len(sent), skipped=len(shards) - len(sent))
    return len(sent)


@app.task(name=WARM_SHARD, **RETRY)
def warm_shard(generation: int, low: int | None, high: int | None) -> int:
    """Recompute one shard of a scheduled pass (see dashcache.passes); returns values written."""
    rt = runtime()
    shard = ShardTask(int(generation), low, high)
    markers = _markers()
    if not markers.renew(shard):
        log.info("pass.shard_skipped", generation=shard.generation, shard=shard.name)
        return 0
    accounts = shard.accounts
    max_breakdown = rt.settings.max_breakdown

    def run() -> RecomputeResult:
        if accounts is None:
            return recompute_scope(
                rt.engine, rt.store, None, max_breakdown, generation=shard.generation
            )
        reads = ReadMarks(rt.store.client, rt.store.keys, rt.settings.idle_days)
        return recompute_every_scope(
            rt.engine,
            rt.store,
            max_breakdown,
            accounts=accounts,
            generation=shard.generation,
            reads=reads,
        )

    result = _logged(f"shard:{shard.name}", run, event="shard.finished")
    rt.metrics.count_drift(result.drift, "schedule")
    rt.metrics.record_pass_shard(result.scopes, result.idle_dropped)
    record = markers.finish(shard, result, clock.now())
    if record is not None:
        log.info("recompute.finished", scope="all", trigger="schedule", **record)
        rt.metrics.record_scheduled_run(clock.now())
    return result.written


def _markers() -> PassMarkers:
    """The pass markers of this process's store."""
    rt = runtime()
    return PassMarkers(rt.store.client, rt.store.keys, rt.settings)


@app.task(name=WARM_SCOPE, **RETRY)
def warm_scope(account_id: Scope) -> int:
    """Recompute one scope (an account, or None for all accounts)."""
    account_id = check_account_id(account_id)
    rt = runtime()
    # Sent only by a reader's refresh of a stale value: a read (see dashcache.reads).
    ReadMarks(rt.store.client, rt.store.keys, rt.settings.idle_days).mark(account_id, clock.now())
    result = _logged(
        scope_token(account_id),
        lambda: recompute_scope(rt.engine, rt.store, account_id, rt.settings.max_breakdown),
    )
    rt.metrics.count_drift(result.drift, "schedule")
    return result.written


@app.task(name=RECOMPUTE_TARGETS, bind=True, **RETRY)
def recompute_event_targets(self: Any, scope: object, kinds: object) -> int:
    """Recompute the kinds of a target (`all`, `every`, `accounts`) events made stale, coalesced.

    A message naming no target of ours is dead-lettered, never retried.
    """
    rt = runtime()
    publisher = rt.publisher
    try:
        event_run = check_run(scope, kinds)
    except InvalidEvent as error:
        keys = publisher.coalescer.keys
        dead_letter(publisher.client, keys, {"scope": scope, "kinds": kinds}, error)
        rt.metrics.record_event("dead_lettered")
        return 0
    ctx = EventRun(
        rt.engine,
        rt.store,
        publisher.coalescer,
        rt.metrics,
        rt.settings.max_breakdown,
        publisher.send_runs,
    )
    claimed: dict[str, Any] = {}

    def note(claim: Claim) -> None:
        claimed["started_ms"] = claim.started_ms
        claimed["claimed"] = [target.kind.value for target in claim.targets]
        if claim.cooling:
            claimed["cooling"] = {kind.value: wait for kind, wait in claim.cooling.items()}

    result = _logged(
        event_run.scope,
        lambda: recompute_targets(ctx, event_run, _attempt(self), note),
        trigger="event",
        claimed=claimed,
        kinds=[kind.value for kind in event_run.kinds],
    )
    if result is not None:
        rt.metrics.count_drift(result.drift, "event")
    return 0 if result is None else result.written


@app.task(name=INGEST_EVENTS, autoretry_for=(RedisError,), max_retries=3, retry_backoff=1)
def ingest_events(payload: object) -> int:
    """Validate and publish a batch of events in wire form; bad batches go to the dead letters."""
    accepted = ingest(payload, runtime().publisher)
    log.info("events.ingested", accepted=accepted)
    return accepted


@overload
def _logged(
    scope: str,
    run: Callable[[], RecomputeResult],
    trigger: Trigger = ...,
    claimed: dict[str, Any] | None = ...,
    event: str = ...,
    **extra: Any,
) -> RecomputeResult: ...


@overload
def _logged(
    scope: str,
    run: Callable[[], RecomputeResult | None],
    trigger: Trigger = ...,
    claimed: dict[str, Any] | None = ...,
    event: str = ...,
    **extra: Any,
) -> RecomputeResult | None: ...


def _logged(
    scope: str,
    run: Callable[[], RecomputeResult | None],
    trigger: Trigger = "schedule",
    claimed: dict[str, Any] | None = None,
    event: str = "recompute.finished",
    **extra: Any,
) -> RecomputeResult | None:
    """Run one recompute; log one line and count it in the metrics, whatever happens.

    A run that found nothing left to claim (None) logs outcome `skipped` and is not counted.
    `claimed` holds what the run's claim filled in (its start time, kinds), logged with the line;
    `event` names the line of a run that finished (a pass's shard logs `shard.finished`).
    """
    metrics = runtime().metrics
    started = time.perf_counter()
    try:
        result = run()
    except Exception as error:
        _failed(scope, trigger, started, error, **extra, **(claimed or {}))
        raise
    duration = time.perf_counter() - started
    extra.update(claimed or {})
    if result is None:
        log.info(
            "recompute.finished",
            scope=scope,
            trigger=trigger,
            duration_ms=round(duration * 1000, 1),
            outcome="skipped",
            scopes=0,
            **extra,
        )
        return None
    metrics.record_recompute(trigger, result.outcome, duration, fenced=result.fenced)
    log.info(
        event,
        scope=run_label(scope, result),
        trigger=trigger,
        duration_ms=round(duration * 1000, 1),
        outcome=result.outcome,
        generation=result.generation,
        scopes=result.scopes,
        written=result.written,
        fenced=result.fenced,
        **extra,
    )
    return result


def _failed(scope: str, trigger: Trigger, started: float, error: Exception, **extra: Any) -> None:
    """Log and count a recompute (or the planning of a pass) that raised."""
    duration = time.perf_counter() - started
    runtime().metrics.record_recompute(trigger, "error", duration)
    log.warning(
        "recompute.failed",
        scope=scope,
        trigger=trigger,
        duration_ms=round(duration * 1000, 1),
        outcome="error",
        error=f"{type(error).__name__}: {error}",
        cause=failure_cause(error),
        **extra,
    )


def _attempt(task: Any) -> str:
    """The run token of this attempt: a retried call of the claim script repeats it, so it gets
    its first claim back; the task's own retry (a new attempt) claims afresh."""
    return f"{task.request.id}:{task.request.retries}"
