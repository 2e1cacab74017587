"""`dashcache health`: Redis and the database answer, the schedule runs, no value is too old.

The checks are pure functions of what was read; `run_checks` does the reading.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import redis
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from dashcache.config import Settings
from dashcache.keys import KeySchema
from dashcache.logging import redact
from dashcache.observe.cdc import CdcStatus, read_cdc
from dashcache.observe.freshness import Freshness, read_freshness
from dashcache.observe.totals import read_totals
from dashcache.sentinel import primary_of


@dataclass(frozen=True, slots=True)
class Check:
    """One named check and what it found."""

    name: str
    ok: bool
    detail: str


def schedule_check(last_run: datetime | None, now: datetime, refresh_seconds: int) -> Check:
    """The last successful scheduled run finished within two refresh periods."""
    limit = 2 * refresh_seconds
    if last_run is None:
        return Check("schedule", False, "no successful scheduled run recorded")
    age = (now - last_run).total_seconds()
    if age > limit:
        return Check(
            "schedule", False, f"last scheduled run {age:.0f} s ago, over two periods ({limit} s)"
        )
    return Check("schedule", True, f"last scheduled run {age:.0f} s ago")


def freshness_check(freshness: Freshness, soft_age: int) -> Check:
    """No warmed value is older than the soft age."""
    old = [age for age in freshness.ages if age.age_seconds > soft_age]
    oldest = freshness.oldest
    if old and oldest is not None:
        return Check(
            "freshness",
            False,
            f"{len(old)} values older than the soft age ({soft_age} s); oldest: "
            f"{oldest.kind} of {oldest.scope}, {oldest.age_seconds:.0f} s",
        )
    scopes = freshness.scopes_warmed
    return Check("freshness", True, f"{scopes} scopes warmed, none older than {soft_age} s")


def cdc_check(status: CdcStatus, now: datetime, max_lag: float) -> Check:
    """The WAL consumer applies transactions within `max_lag` seconds of their commit and
    reported within that long."""
    silent = None if status.updated_at is None else (now - status.updated_at).total_seconds()
    if silent is None or silent > max_lag:
        return Check("cdc", False, f"no WAL consumer reported in the last {max_lag:g} s")
    lag = status.lag_seconds
    if lag is not None and lag > max_lag:
        return Check(
            "cdc", False, f"lag {lag:.3f} s, over DASHCACHE_CDC_MAX_LAG_SECONDS {max_lag:g}"
        )
    shown = "-" if lag is None else f"{lag:.3f} s"
    return Check("cdc", True, f"slot {status.slot} at {status.confirmed_lsn}, lag {shown}")


def run_checks(
    settings: Settings, client: redis.Redis, engine: Engine, now: datetime
) -> list[Check]:
    """Every check, in order: redis, database, schedule, freshness, and cdc when a WAL consumer
    ever ran."""
    checks = []
    keys = KeySchema(settings.key_prefix)
    try:
        client.ping()
        totals = read_totals(client, keys)
        freshness = read_freshness(client, keys, now)
    except redis.RedisError as error:
        reason = f"cannot reach Redis: {_first_line(error)}"
        checks.append(Check("redis", False, reason))
        checks.append(Check("schedule", False, "not checked: Redis unreachable"))
        checks.append(Check("freshness", False, "not checked: Redis unreachable"))
    else:
        checks.append(Check("redis", True, f"answers; writes go to {_primary(client)}"))
        checks.append(schedule_check(totals.last_scheduled_run, now, settings.refresh_seconds))
        checks.append(freshness_check(freshness, settings.soft_age))
        cdc = read_cdc(client, keys)
        if cdc is not None:
            checks.append(cdc_check(cdc, now, settings.cdc_max_lag_seconds))
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks.insert(1, Check("database", True, "answers"))
    except SQLAlchemyError as error:
        checks.insert(
            1, Check("database", False, f"cannot reach the database: {_first_line(error)}")
        )
    return checks


def _primary(client: redis.Redis) -> str:
    try:
        return primary_of(client)
    except redis.RedisError as error:
        return f"an unknown primary ({_first_line(error)})"


def _first_line(error: Exception) -> str:
    text_ = str(error).strip().splitlines()
    return redact(text_[0]) if text_ else type(error).__name__
