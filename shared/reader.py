"""The library web processes use to read dashboards: Redis first, the database only on a miss.

    reader = DashboardReader.from_env()
    v = reader.get_aggregates(account_id=None)   # v.data, v.computed_at, v.age, v.source
    b = reader.get_category_breakdown(limit=10, account_id=42)

A hit costs one GET and a JSON parse. A miss runs the same recompute the worker runs, writes it
through the generation fence, and returns it with `source="fallback"`. Every read is counted in
`shared.metrics` (in process; flushed to Redis in the background).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Engine

from shared import clock
from shared.config import Settings
from shared.db import make_engine
from shared.errors import InvalidArgument
from shared.keys import KeySchema, Kind, Scope, check_account_id, scope_token
from shared.logging import get_logger
from shared.metrics import Metrics, metrics_for
from shared.recompute import recompute_scope
from shared.store import Envelope, RedisStore, make_redis

Source = Literal["cache", "fallback"]

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class DashboardValue:
    """One dashboard value as a reader got it.

    `data` is a plain JSON-typed dict; `age` is seconds since `computed_at` at the time of
    the read; `source` says where it came from.
    """

    data: dict[str, Any]
    computed_at: datetime
    generation: int
    age: float
    source: Source


class DashboardReader:
    """Reads dashboard values for one deployment (one key prefix)."""

    def __init__(
        self, settings: Settings, store: RedisStore, engine: Engine, metrics: Metrics
    ) -> None:
        self.settings = settings
        self.store = store
        self.engine = engine
        self.metrics = metrics

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DashboardReader:
        """A reader configured from the environment (see README, Configuration)."""
        return cls.from_settings(Settings.from_env(env))

    @classmethod
    def from_settings(cls, settings: Settings) -> DashboardReader:
        """A reader with its own Redis client and database engine."""
        client = make_redis(settings.redis_url, settings.redis_timeout_seconds)
        store = RedisStore(client, KeySchema(settings.key_prefix), settings.ttl_seconds)
        return cls(settings, store, make_engine(settings.database_url), metrics_for(settings))

    def get_aggregates(self, account_id: Scope = None) -> DashboardValue:
        """Totals, unread, auto-labeled, categories and weekly growth of a scope."""
        account_id = check_account_id(account_id)
        envelope, source = self._read(Kind.AGGREGATES, account_id)
        return _value(envelope, envelope.data, source)

    def get_category_breakdown(self, limit: int = 10, account_id: Scope = None) -> DashboardValue:
        """The top `limit` categories of a scope: name -> count, by count desc then name."""
        maximum = self.settings.max_breakdown
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= maximum:
            raise InvalidArgument(f"limit must be an integer from 1 to {maximum}, got {limit!r}")
        account_id = check_account_id(account_id)
        envelope, source = self._read(Kind.BREAKDOWN, account_id)
        return _value(envelope, dict(envelope.data[:limit]), source)

    def close(self) -> None:
        """Release the Redis connections and the database pool."""
        self.store.client.close()
        self.engine.dispose()

    def _read(self, kind: Kind, account_id: Scope) -> tuple[Envelope, Source]:
        try:
            cached = self.store.get(kind, account_id)
            if cached is not None:
                self.metrics.record_read(kind, "hit")
                return cached, "cache"
            self.metrics.record_read(kind, "miss")
            return self._fallback(kind, account_id), "fallback"
        except Exception:
            self.metrics.record_read(kind, "error")
            raise

    def _fallback(self, kind: Kind, account_id: Scope) -> Envelope:
        started = time.perf_counter()
        try:
            result = recompute_scope(
                self.engine, self.store, account_id, self.settings.max_breakdown
            )
        except Exception:
            self.metrics.record_recompute("fallback", "error", time.perf_counter() - started)
            raise
        duration = time.perf_counter() - started
        self.metrics.record_read(kind, "fallback")
        self.metrics.record_recompute("fallback", result.outcome, duration, fenced=result.fenced)
        log.info(
            "reader.fallback",
            kind=kind.name.lower(),
            scope=scope_token(account_id),
            duration_ms=round(duration * 1000, 1),
            outcome=result.outcome,
            generation=result.generation,
            fenced=result.fenced,
        )
        return result.envelope(kind, account_id)


def _value(envelope: Envelope, data: dict[str, Any], source: Source) -> DashboardValue:
    age = (clock.now() - envelope.computed_at).total_seconds()
    return DashboardValue(data, envelope.computed_at, envelope.generation, max(age, 0.0), source)
