"""The dashcache strategy: real worker and beat processes, the reader library in the bench."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

import redis

from dashcache.bench.launcher import WorkerAndBeat
from dashcache.bench.mutations import Mutation
from dashcache.bench.strategies import BenchContext, Reading
from dashcache.events import EventPublisher
from dashcache.keys import KeySchema, Kind, Scope
from dashcache.reader import DashboardReader

WARM_TIMEOUT_SECONDS = 60.0
WORKER_CONCURRENCY = 2


class Dashcache:
    """Worker, beat, events and reader, as deployed.

    Worker and beat keep every scope warm; each committed batch is published as events
    (`dashcache.events.EventPublisher`); reads go through `DashboardReader`.

    With `background=False` no process runs: only the reader library, on cold keys.
    """

    name = "dashcache"

    def __init__(self, ctx: BenchContext, refresh_seconds: int, background: bool = True) -> None:
        self.ctx = ctx
        self.background = background
        self.settings = replace(
            ctx.settings,
            refresh_seconds=refresh_seconds,
            ttl_seconds=max(ctx.settings.ttl_seconds, 2 * refresh_seconds),
        )
        self.keys = KeySchema(self.settings.key_prefix)
        self.reader = DashboardReader.from_settings(self.settings)
        self.publisher = EventPublisher(self.settings)
        self.processes: WorkerAndBeat | None = None
        self.cpu_seconds = 0.0

    def start(self) -> None:
        """Start worker and beat; return once the worker's start-up warm has written `all`."""
        if not self.background:
            return
        self.processes = WorkerAndBeat(
            self.settings, WORKER_CONCURRENCY, self.ctx.log_dir / "dashcache"
        )
        key = self.keys.value(Kind.AGGREGATES, None)
        deadline = time.monotonic() + WARM_TIMEOUT_SECONDS
        while not self.ctx.redis.exists(key):
            self.processes.check()
            if time.monotonic() > deadline:
                raise TimeoutError(f"the worker did not warm {key} in {WARM_TIMEOUT_SECONDS}s")
            time.sleep(0.05)

    def read(self, kind: Kind, account_id: Scope) -> Reading:
        if kind is Kind.AGGREGATES:
            value = self.reader.get_aggregates(account_id)
            return Reading(value.data, value.computed_at)
        value = self.reader.get_category_breakdown(self.settings.max_breakdown, account_id)
        return Reading([list(pair) for pair in value.data.items()], value.computed_at)

    def on_commit(self, batch: Sequence[Mutation]) -> None:
        self.publisher.publish_many([mutation.event() for mutation in batch])

    def make_cold(self, account_id: Scope) -> None:
        self.ctx.redis.delete(*(self.keys.value(kind, account_id) for kind in Kind))

    def disconnect(self) -> None:
        self.reader.engine.dispose()

    def stop(self) -> None:
        """Stop worker and beat (keeping their CPU time); delete the prefix's keys and queues."""
        if self.processes is not None:
            self.cpu_seconds = self.processes.cpu_seconds()
            self.processes.stop()
        self.reader.close()
        self.publisher.close()
        prefix = self.settings.key_prefix
        patterns = (f"{prefix}:*", f"{prefix}.*", f"_kombu.*.{prefix}.*")
        keys = [key for p in patterns for key in self.ctx.redis.scan_iter(p, count=1000)]
        if keys:
            self.ctx.redis.delete(*keys)

    def memory_per_scope(self) -> float:
        """Mean Redis MEMORY USAGE of one scope's values (aggregates + breakdown), in bytes."""
        scopes: list[Scope] = [None, *self.reader.store.warmed_accounts()]
        return bytes_per_scope(self.ctx.redis, self.keys, scopes)


def bytes_per_scope(client: redis.Redis, keys: KeySchema, scopes: Sequence[Scope]) -> float:
    """Mean Redis MEMORY USAGE of the given scopes' values (aggregates + breakdown), in bytes."""
    pipe = client.pipeline(transaction=False)
    for scope in scopes:
        for kind in Kind:
            pipe.memory_usage(keys.value(kind, scope), samples=0)
    sizes = [int(size or 0) for size in pipe.execute()]
    return sum(sizes) / max(len(scopes), 1)
