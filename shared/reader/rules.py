"""What the sync and asyncio readers share: the value type, argument checks, the age rules of a
cached envelope, and the bookkeeping of a computation. No network I/O here; only the waits and
the I/O differ between `sync_reader.py` and `async_reader.py`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.exc import SQLAlchemyError

from dashcache import clock, codec
from dashcache.errors import CacheUnavailable, DashboardUnavailable, InvalidArgument
from dashcache.keys import Kind, Scope, check_account_id, scope_token
from dashcache.metrics import Metrics, RecomputeOutcome
from dashcache.reader.throttle import ThrottledLog
from dashcache.recompute import RecomputeResult
from dashcache.schema.tables import single_tenant_problem
from dashcache.windows import WindowsExpired, moved

Source = Literal["cache", "fallback", "fresh"]

LOG_INTERVAL_SECONDS = 60.0
"""An outage (Redis, the database) is logged at most once per this many seconds per process."""


@dataclass(slots=True)
class DashboardValue:
    """One dashboard value as a reader got it (not frozen: that would add a third to a hit's
    Python time).

    `data` is a plain JSON-typed dict; `age` is seconds since `computed_at` at the time of the
    read; `source` says where it came from: "cache", "fallback" (computed because the cache could
    not serve it) or "fresh" (asked for); `stale` is true past the soft age. `generation` is 0
    for a value computed while Redis was unreachable (not stored).
    """

    data: dict[str, Any]
    computed_at: datetime
    generation: int
    age: float
    source: Source
    stale: bool


Found = tuple[Any, datetime, int, float, Source, bool]
"""What a read found, in DashboardValue's field order (a tuple: cheap on the hit path)."""


def check_scope(account_id: object, single_tenant: bool) -> Scope:
    """A valid scope of this deployment; a single-tenant one (no account column) has None only."""
    if single_tenant and account_id is not None:
        raise InvalidArgument(single_tenant_problem(account_id))
    return check_account_id(account_id)


def check_limit(limit: object, maximum: int) -> int:
    """Return `limit` if it is an integer from 1 to `maximum`, else raise `InvalidArgument`."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= maximum:
        raise InvalidArgument(f"limit must be an integer from 1 to {maximum}, got {limit!r}")
    return limit


def breakdown_value(found: Found, limit: int) -> DashboardValue:
    """The top `limit` categories of a stored breakdown ([name, count] pairs, in order)."""
    data, computed_at, generation, age, source, stale = found
    return DashboardValue(dict(data[:limit]), computed_at, generation, age, source, stale)


def usable(raw: Any, ttl: float, soft_age: float, max_age: float | None) -> Found | None:
    """The cached envelope `raw` if there is one, younger than the hard TTL and than `max_age`;
    marked stale past `soft_age`. Its weekly numbers are moved to the moment of the read
    (shared/windows.py); `WindowsExpired` when its moves end before it (advance, or recount)."""
    if raw is None:
        return None
    try:
        body = codec.loads(raw)
        data, computed_at = body["data"], datetime.fromisoformat(body["computed_at"])
        generation, windows = body["generation"], body.get("w")
    except (ValueError, KeyError, TypeError):
        return None  # not ours or corrupt: recomputed, and the fence overwrites it
    now = clock.timestamp()
    age = now - computed_at.timestamp()
    if age >= ttl or (max_age is not None and age > max_age):
        return None
    if windows is not None:
        data = moved(data, windows, now)
    return data, computed_at, generation, max(age, 0.0), "cache", age > soft_age


def usable_now(raw: Any, ttl: float, soft_age: float, max_age: float | None) -> Found | None:
    """`usable`, with a value whose moves ended treated as missing (while waiting on another
    reader's computation, which writes a value moved to now)."""
    try:
        return usable(raw, ttl, soft_age, max_age)
    except WindowsExpired:
        return None


def computed(
    result: RecomputeResult,
    kind: Kind,
    account_id: Scope,
    source: Literal["fallback", "fresh"],
    outcome: RecomputeOutcome,
    duration: float,
    metrics: Metrics,
    outages: ThrottledLog,
) -> Found:
    """Count a reader's computation (and log a stored fallback on the reader's logger); the value
    it produced."""
    metrics.record_read(kind, source)
    metrics.record_recompute(source, outcome, duration, fenced=result.fenced)
    metrics.count_drift(result.drift, source)
    if source == "fallback" and result.generation:  # while Redis is down, outage logs say it
        outages.log.info(
            "reader.fallback",
            kind=kind.name.lower(),
            scope=scope_token(account_id),
            duration_ms=round(duration * 1000, 1),
            outcome=outcome,
            generation=result.generation,
            fenced=result.fenced,
        )
    envelope = result.envelope(kind, account_id)
    computed_at = envelope.computed_at
    age = max(clock.timestamp() - computed_at.timestamp(), 0.0)
    return envelope.data, computed_at, envelope.generation, age, source, False


def redis_down_error() -> CacheUnavailable:
    """What a read raises with Redis unreachable and DASHCACHE_ON_REDIS_DOWN=error."""
    return CacheUnavailable(
        "Redis is unreachable and DASHCACHE_ON_REDIS_DOWN=error, so no dashboard value "
        "can be read; retry shortly"
    )


def database_failed(error: SQLAlchemyError, outages: ThrottledLog) -> DashboardUnavailable:
    """Log a database failure (throttled); the error a read raises for it."""
    detail = str(error).splitlines()[0] if str(error) else type(error).__name__
    outages.emit("warning", "reader.database_failed", error=detail)
    return DashboardUnavailable(f"nothing usable is cached and the database failed: {detail}")
