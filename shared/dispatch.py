"""Sending work to the worker by task name, so that `shared` never imports `worker`.

The task names below are the contract between the two: the worker registers these names,
producers (web processes, beat, readers) send to them.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from dashcache.config import Settings
from dashcache.redis_url import celery_broker

WARM_ALL = "dashcache.warm_all"
"""Recompute every scope in one pass (beat sends it to the schedule queue)."""

WARM_SHARD = "dashcache.warm_shard"
"""Recompute one shard of a scheduled pass: args `[generation, low, high]`, the account ids
from `low` up to `high`, or the all-accounts scope when both are null (schedule queue)."""

WARM_SCOPE = "dashcache.warm_scope"
"""Recompute one scope: args `[account_id]` (null for all accounts)."""


RECOMPUTE_TARGETS = "dashcache.recompute_targets"
"""Event recompute of one scope: args `[scope token or "every", [kind, ...]]` (events queue)."""

INGEST_EVENTS = "dashcache.ingest_events"
"""Events from any producer: args `[[event wire form, ...]]` (events queue; dashcache.events)."""


class TaskSender:
    """A publish-only Celery client: JSON messages, no result backend, one connection pool."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        broker_url, broker_options = celery_broker(settings.broker_url)
        self.app = Celery("dashcache-producer", broker=broker_url, set_as_current=False)
        self.app.conf.update(
            broker_read_url=broker_url,  # before CELERY_BROKER_URL, which Celery reads itself
            broker_write_url=broker_url,
            broker_transport_options=broker_options,
            task_serializer="json",
            accept_content=["json"],
            task_ignore_result=True,
            broker_connection_retry_on_startup=True,
        )

    def send(
        self,
        name: str,
        args: list[Any],
        queue: str,
        countdown: float | None = None,
        expires: float | None = None,
    ) -> None:
        """Publish one task message; `countdown` delays its execution by that many seconds,
        `expires` drops it unexecuted once that many seconds have passed."""
        self.app.send_task(name, args=args, queue=queue, countdown=countdown, expires=expires)

    def close(self) -> None:
        """Release the broker connections."""
        self.app.close()
