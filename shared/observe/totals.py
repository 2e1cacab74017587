"""Reading the metric totals every process flushed to Redis (the hash `dashcache.metrics` fills)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import redis

from dashcache.keys import KeySchema
from dashcache.metrics import BUCKET_LABELS, LAST_SCHEDULED_RUN


@dataclass(frozen=True, slots=True)
class Durations:
    """One trigger's recompute durations: count per bucket (not cumulative) and their sum."""

    buckets: dict[str, int] = field(default_factory=dict)
    sum_seconds: float = 0.0

    @property
    def count(self) -> int:
        """Recomputes measured."""
        return sum(self.buckets.values())

    def cumulative(self) -> list[tuple[str, int]]:
        """(le, recomputes at most that long) for every bucket, `+Inf` last, as Prometheus wants."""
        running = 0
        pairs = []
        for label in BUCKET_LABELS:
            running += self.buckets.get(label, 0)
            pairs.append(("+Inf" if label == "inf" else label, running))
        return pairs


@dataclass(frozen=True, slots=True)
class Totals:
    """Every counter, summed over all processes since the hash was created."""

    reads: dict[tuple[str, str], int]
    """(kind, outcome) -> reads."""
    recomputes: dict[tuple[str, str], int]
    """(trigger, outcome) -> recomputes."""
    durations: dict[str, Durations]
    """trigger -> durations."""
    fenced_writes: dict[str, int]
    """trigger -> values the fence rejected."""
    events: dict[str, int]
    """outcome -> events."""
    last_scheduled_run: datetime | None
    drift_by_trigger: dict[str, dict[str, int]] = field(default_factory=dict)
    """trigger -> kind -> values a recompute found wrong and repaired."""
    pass_scopes: dict[str, int] = field(default_factory=dict)
    """Scopes the scheduled pass's shards warmed (`warmed`) and dropped as idle (`idle_dropped`)."""
    writes_lost: dict[str, int] = field(default_factory=dict)
    """source (`cdc`, `events`) -> times a writer found Redis had lost its writes."""
    wait_short: int = 0
    """WAL transactions whose WAIT came short of DASHCACHE_REDIS_MIN_REPLICAS (unconfirmed)."""

    @property
    def drift(self) -> dict[str, int]:
        """kind -> values found wrong and repaired, whatever the trigger."""
        total: dict[str, int] = {}
        for by_kind in self.drift_by_trigger.values():
            for kind, count in by_kind.items():
                total[kind] = total.get(kind, 0) + count
        return total

    def reads_with(self, outcome: str) -> int:
        """Reads of either kind with this outcome."""
        return sum(count for (_, each), count in self.reads.items() if each == outcome)

    @property
    def lookups(self) -> int:
        """Reads that looked in the cache: hits, stale values served and misses."""
        return sum(self.reads_with(outcome) for outcome in ("hit", "stale", "miss"))

    @property
    def hit_ratio(self) -> float | None:
        """Share of lookups served from the cache (stale values included); None before any."""
        lookups = self.lookups
        if lookups == 0:
            return None
        return (self.reads_with("hit") + self.reads_with("stale")) / lookups


def parse_totals(fields: dict[bytes, bytes]) -> Totals:
    """Totals from the hash's fields; fields this version does not know are ignored."""
    reads: dict[tuple[str, str], int] = {}
    recomputes: dict[tuple[str, str], int] = {}
    buckets: dict[str, dict[str, int]] = {}
    sums: dict[str, float] = {}
    fenced: dict[str, int] = {}
    events: dict[str, int] = {}
    drift: dict[str, dict[str, int]] = {}
    last_run: datetime | None = None
    passes: dict[str, int] = {}
    lost: dict[str, int] = {}
    wait_short = 0
    for raw_name, raw_value in fields.items():
        name, value = raw_name.decode(), raw_value.decode()
        parts = name.split(":")
        match parts:
            case ["reads", kind, outcome]:
                reads[kind, outcome] = int(value)
            case ["recomputes", trigger, outcome]:
                recomputes[trigger, outcome] = int(value)
            case ["recompute_seconds", trigger, bound]:
                buckets.setdefault(trigger, {})[bound] = int(value)
            case ["recompute_seconds_sum", trigger]:
                sums[trigger] = float(value)
            case ["fenced_writes", trigger]:
                fenced[trigger] = int(value)
            case ["events", outcome]:
                events[outcome] = int(value)
            case ["drift", kind, trigger]:
                by_kind = drift.setdefault(trigger, {})
                by_kind[kind] = by_kind.get(kind, 0) + int(value)
            case ["drift", kind]:  # written before drift had a trigger: the scheduled pass
                by_kind = drift.setdefault("schedule", {})
                by_kind[kind] = by_kind.get(kind, 0) + int(value)
            case ["pass", what]:
                passes[what] = int(value)
            case ["redis", "writes_lost", source]:
                lost[source] = int(value)
            case ["cdc", "wait_short"]:
                wait_short = int(value)
            case [single] if single == LAST_SCHEDULED_RUN:
                last_run = datetime.fromtimestamp(float(value), UTC)
    durations = {
        trigger: Durations(buckets.get(trigger, {}), sums.get(trigger, 0.0))
        for trigger in buckets.keys() | sums.keys()
    }
    return Totals(
        reads, recomputes, durations, fenced, events, last_run, drift, passes, lost, wait_short
    )


def read_totals(client: redis.Redis, keys: KeySchema) -> Totals:
    """The totals stored under `keys`' prefix (one HGETALL)."""
    fields: dict[bytes, bytes] = client.hgetall(keys.metrics)  # type: ignore[assignment]
    return parse_totals(fields)
