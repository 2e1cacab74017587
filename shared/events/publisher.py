"""Publishing events: deltas applied in Redis at once; the rest marked and recomputed.

Email events with a `txid` update the cached values by deltas in one script call per batch
(shared/events/apply.py): no broker, no worker, no read of the database. Category events and
email events without a txid find their stale keys, mark them pending, and send only the runs
needed (an event whose keys are already pending costs one round trip and nothing on the
broker); runs go by task name to the events queue, apart from the schedule.

`publish` returns at once: the event joins a background batch (shared/events/batching.py), so
many single calls cost one round trip per batch. `flush()` waits until they were sent.
`publish_many` sends its batch before returning. After `close()` both raise `PublisherClosed`.

Each batch that wrote is counted in Redis for this process (dashcache.written); a watch thread
finds a Redis that lost any of them (restarted empty, or a promoted replica that missed them)
and sends a full recompute pass (`warm_all`) at once (docs/reliability.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

import redis

from dashcache.config import Settings
from dashcache.dispatch import RECOMPUTE_TARGETS, WARM_ALL, TaskSender
from dashcache.errors import EventConflict, PublisherClosed
from dashcache.events.apply import Applied, DeltaApplier
from dashcache.events.batching import Batcher
from dashcache.events.coalesce import Coalescer, Run, run_scope
from dashcache.events.deltas import Split, split
from dashcache.events.targeting import Target, targets_of, targets_of_all
from dashcache.events.tenancy import check_tenancy
from dashcache.events.types import EmailCreated, EmailDeleted, EmailUpdated, Event, check_event
from dashcache.events.unapplied import UnappliedMarks
from dashcache.keys import KeySchema, Kind
from dashcache.logging import get_logger
from dashcache.metrics import metrics_for
from dashcache.schema.mapping import load_mapping
from dashcache.store import make_redis
from dashcache.written import LossWatch, WriterRecord

EMAIL_EVENTS = (EmailCreated, EmailUpdated, EmailDeleted)

log = get_logger(__name__)


class EventPublisher:
    """Turns events into deltas and coalesced recomputes for one deployment; thread-safe, one
    per process."""

    def __init__(
        self,
        settings: Settings,
        client: redis.Redis | None = None,
        sender: TaskSender | None = None,
    ) -> None:
        self.settings = settings
        self.client = client or make_redis(settings.redis_url, settings.redis_timeout_seconds)
        self.sender = sender or TaskSender(settings)
        keys = KeySchema(settings.key_prefix)
        self.coalescer = Coalescer(self.client, keys, settings)
        self.applier = DeltaApplier(self.client, keys, settings.ttl_seconds)
        self.unapplied = UnappliedMarks(self.client, keys, settings.ttl_seconds)
        self.delta_states = settings.database_url.startswith("postgresql")
        self.metrics = metrics_for(settings)
        self.multi_tenant = load_mapping(settings.schema_file).multi_tenant
        self.record = WriterRecord(self.client, keys, settings.ttl_seconds)
        self.watch = LossWatch(self.record, self._repair_lost, "events")
        self._closed = False
        self.batcher = Batcher(
            lambda batch: self._send_batch(batch, strict=False),
            lambda count: self.metrics.record_event("failed", count),
            settings.publish_linger_ms / 1000,
            settings.event_max_batch,
        )

    def publish(self, event: Event) -> list[Run]:
        """Queue one event for the background batch; anything that is not an event, or does not
        fit the tenancy, raises `InvalidEvent` here; after `close()`, `PublisherClosed`. Returns
        no runs: the batch sends them (see `flush`)."""
        self._check_open()
        event = check_event(event)
        check_tenancy([event], self.multi_tenant)
        self.batcher.add(event)
        return []

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event `publish` queued so far was sent; False on timeout."""
        return self.batcher.flush(timeout)

    def publish_many(self, events: Iterable[Event]) -> list[Run]:
        """Publish a batch (one transaction's events) now: its deltas in one round trip, one mark
        for the keys of the rest. Returns the runs it caused.

        The events of one email with one txid are netted into that email's change in the
        transaction, in whatever order they come (created then updated is one creation).
        Anything that is not an event, an event that does not fit the tenancy, or events of a
        (txid, email) that do not chain (`netting.net_change`) raise `InvalidEvent` before
        anything is sent, and are logged (`event.not_netted`). A change of a (txid, email)
        that an earlier batch already published with other rows raises `EventConflict` after
        the batch was sent (logged `event.conflict`; its values are recomputed). After
        `close()`, `PublisherClosed`.
        """
        self._check_open()
        return self._send_batch(events)

    def _check_open(self) -> None:
        if self._closed:
            raise PublisherClosed("the event publisher is closed: publish through an open one")

    def _send_batch(self, events: Iterable[Event], strict: bool = True) -> list[Run]:
        """Send one batch. `strict` (publish_many): events of a (txid, email) that cannot be
        netted refuse the whole batch before anything is sent, and a conflict with an earlier
        batch raises `EventConflict` once the batch is sent. Else (the background batch of
        `publish`) both are logged and their scopes recomputed."""
        batch = [check_event(event) for event in events]
        check_tenancy(batch, self.multi_tenant)
        parted = split(batch)
        for error, changes in parted.refused:
            log.error("event.not_netted", field=error.field, reason=str(error))
            parted.recompute += changes
            parted.delta_events -= len(changes)
        if strict and parted.refused:
            raise parted.refused[0][0]
        try:
            applied, runs = self._write(parted)
        except Exception:
            # Nothing says how much of the batch reached Redis or the broker: owe a pass.
            self.watch.owe()
            raise
        self._count(parted.recompute, runs, parted.delta_events, applied)
        if applied.conflicts:
            self._conflicted(applied.conflicts, strict)
        return runs

    def _write(self, parted: Split) -> tuple[Applied, list[Run]]:
        """Apply a batch's deltas, mark what they could not reach, send the runs it needs."""
        applied = self._apply(parted.deltas)
        conflicted = {
            Target(kind, token)
            for tokens in applied.conflicts.values()
            for token in tokens
            for kind in Kind
        }
        stale = applied.stale | conflicted
        if self.delta_states:
            emails = [e for e in parted.recompute if isinstance(e, EMAIL_EVENTS)]
            unnetted = [e for e in emails if e.txid is not None]
            explained = [e for e in emails if e.txid is None]
            self.unapplied.mark(explained, targets_of_all(unnetted) | stale)
        targets = targets_of_all(parted.recompute) | stale
        runs = self.coalescer.mark(targets)
        if targets:
            self.record.count()
        self.watch.ensure_running()
        self.send_runs(runs)
        return applied, runs

    @staticmethod
    def _conflicted(conflicts: dict[str, list[str]], strict: bool) -> None:
        """Log each (txid, email) an earlier batch had already changed otherwise; `strict`:
        raise `EventConflict` naming them."""
        for identity, tokens in conflicts.items():
            log.error("event.conflict", identity=identity, scopes=sorted(tokens))
        if strict:
            shown = ", ".join(sorted(conflicts))
            raise EventConflict(
                f"events conflict with the change already applied for (txid:email_id) {shown}: "
                "an earlier batch published that email's change in that transaction with other "
                "rows. Publish one transaction's events of an email in one batch, where they are "
                "netted; the rest of this batch was applied and these emails' values are "
                "recomputed",
                field="events",
            )

    def send_runs(self, runs: Iterable[Run]) -> None:
        """Send each run to the events queue (after its countdown, if any)."""
        for run in runs:
            args = [run.scope, [kind.value for kind in run.kinds]]
            self.sender.send(
                RECOMPUTE_TARGETS, args, self.settings.events_queue, countdown=run.countdown
            )

    def _apply(self, deltas: dict[str, list[tuple[str, str]]]) -> Applied:
        """The batch's deltas, then this writer's count, in one round trip."""
        if not deltas:
            return Applied()
        pipe = self.client.pipeline(transaction=False)
        tokens = self.applier.queue(deltas, pipe)
        position = self.record.queue(pipe)
        replies = pipe.execute()
        self.record.acknowledge(replies[position])
        return self.applier.outcome(tokens, replies[:position])

    def _repair_lost(self) -> None:
        """Redis lost writes of this publisher: recompute every scope now."""
        self.sender.send(WARM_ALL, [], self.settings.schedule_queue)
        self.metrics.record_writes_lost("events")

    def _count(self, batch: list[Event], runs: list[Run], deltas: int, applied: Applied) -> None:
        """Count every event received; deltas applied and duplicates; and as coalesced each
        recomputed event that caused no run of its own.

        A started target belongs to the first event of the batch that made it stale; an event
        left with none rode on a pending run or on an earlier event of its batch.
        """
        self.metrics.record_event("received", len(batch) + deltas)
        self.metrics.record_event("applied", applied.applied)
        self.metrics.record_event("duplicate", applied.duplicates + applied.late)
        unclaimed = {Target(kind, run.scope) for run in runs for kind in run.kinds}
        for event in batch:
            mine = {Target(t.kind, run_scope(t)) for t in targets_of(event)} & unclaimed
            unclaimed -= mine
            if not mine:
                self.metrics.record_event("coalesced")

    def close(self) -> None:
        """Send what `publish` queued, then release the Redis and broker connections; later
        publishing raises `PublisherClosed`."""
        self._closed = True
        self.batcher.close()
        self.watch.close()
        self.client.close()
        self.sender.close()


@cache
def default_publisher() -> EventPublisher:
    """This process's publisher, configured from the environment on first use."""
    return EventPublisher(Settings.from_env())


def publish(event: Event) -> list[Run]:
    """Publish one event with the default publisher (see `EventPublisher.publish`)."""
    return default_publisher().publish(event)


def publish_many(events: Iterable[Event]) -> list[Run]:
    """Publish one batch with the default publisher (see `EventPublisher.publish_many`)."""
    return default_publisher().publish_many(events)


def flush(timeout: float | None = None) -> bool:
    """Wait until the default publisher sent every event `publish` queued."""
    return default_publisher().flush(timeout)
