"""Publishing events: find the stale keys, mark them pending, send only the runs needed.

The common case (an event whose keys are already pending) costs one Redis round trip and puts
nothing on the broker. Runs go by task name to the events queue, apart from the schedule.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

import redis

from shared.config import Settings
from shared.dispatch import RECOMPUTE_TARGETS, TaskSender
from shared.events.coalesce import Coalescer, Run, run_scope
from shared.events.targeting import Target, targets_of, targets_of_all
from shared.events.tenancy import check_tenancy
from shared.events.types import Event, check_event
from shared.keys import KeySchema
from shared.metrics import metrics_for
from shared.schema.mapping import load_mapping
from shared.store import make_redis


class EventPublisher:
    """Turns events into coalesced recomputes for one deployment; thread-safe, one per process."""

    def __init__(
        self,
        settings: Settings,
        client: redis.Redis | None = None,
        sender: TaskSender | None = None,
    ) -> None:
        self.settings = settings
        self.client = client or make_redis(settings.redis_url, settings.redis_timeout_seconds)
        self.sender = sender or TaskSender(settings)
        self.coalescer = Coalescer(self.client, KeySchema(settings.key_prefix), settings)
        self.metrics = metrics_for(settings)
        self.multi_tenant = load_mapping(settings.schema_file).multi_tenant

    def publish(self, event: Event) -> list[Run]:
        """Publish one event; return the runs it caused (empty when its keys were pending)."""
        return self.publish_many([event])

    def publish_many(self, events: Iterable[Event]) -> list[Run]:
        """Publish a batch (one transaction's events): one mark for all of its keys.

        Anything that is not an event, or an event that does not fit the tenancy, raises
        `InvalidEvent` before anything is sent.
        """
        batch = [check_event(event) for event in events]
        check_tenancy(batch, self.multi_tenant)
        runs = self.coalescer.mark(targets_of_all(batch))
        self.send_runs(runs)
        self._count(batch, runs)
        return runs

    def send_runs(self, runs: Iterable[Run]) -> None:
        """Send each run to the events queue (after its countdown, if any)."""
        for run in runs:
            args = [run.scope, [kind.value for kind in run.kinds]]
            self.sender.send(
                RECOMPUTE_TARGETS, args, self.settings.events_queue, countdown=run.countdown
            )

    def _count(self, batch: list[Event], runs: list[Run]) -> None:
        """Count every event received, and as coalesced each that caused no run of its own.

        A started target belongs to the first event of the batch that made it stale; an event
        left with none rode on a pending run or on an earlier event of its batch.
        """
        unclaimed = {Target(kind, run.scope) for run in runs for kind in run.kinds}
        for event in batch:
            self.metrics.record_event("received")
            mine = {Target(t.kind, run_scope(t)) for t in targets_of(event)} & unclaimed
            unclaimed -= mine
            if not mine:
                self.metrics.record_event("coalesced")

    def close(self) -> None:
        """Release the Redis and broker connections."""
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
