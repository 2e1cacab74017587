"""Weekly windows that move with the clock: with the WAL source on and app events published, and
no pass, every number a reader returns equals a fresh count as of the moment of the read, hours
and a day after the last recount, with emails at and around both window starts.

The clock is the one clock (shared/clock.py), held at each step's instant in this process (the
WAL consumer's thread never reads it), so a read and its fresh count share one moment."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
import redis
from sqlalchemy import Engine, text

from dashcache import clock
from dashcache.async_reader import AsyncDashboardReader
from dashcache.config import Settings
from dashcache.events import EventPublisher
from dashcache.keys import Kind, Scope
from dashcache.models import Email
from dashcache.reader import DashboardReader
from dashcache.recompute import snapshot, to_data
from dashcache.stats import compute_scope
from dashcache.windows import floor_minute
from tests.cdc.walhelpers import consuming, generations, warm
from tests.eventing import tracked_sessions
from tests.helpers import Row, add_categories, add_emails, wait_until

DAY, WEEK = timedelta(days=1), timedelta(days=7)
SCOPES: tuple[Scope, ...] = (None, 1, 2, 3)
STEPS = [
    timedelta(0),
    timedelta(seconds=39),
    timedelta(seconds=40),
    timedelta(seconds=41),
    timedelta(minutes=11),
    timedelta(hours=3),
    timedelta(hours=3, seconds=40),
    DAY,
    DAY + timedelta(seconds=40),
    DAY + timedelta(hours=1, seconds=40),
]
"""Offsets from the start (20 s into a minute): just before, at and after minute starts, past an
envelope's moves, hours and a day later."""
AROUND = [timedelta(seconds=s) for s in (-61, -60, -59, -1, 0, 1, 59, 60)] + [
    timedelta(microseconds=-1)
]
"""Where emails sit around a window start."""


class HeldClock:
    """The one clock held at a chosen instant."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, at: datetime) -> None:
        self.at = at
        monkeypatch.setattr(clock, "now", lambda: self.at)
        monkeypatch.setattr(clock, "timestamp", lambda: self.at.timestamp())


def boundary_rows(start: datetime) -> list[Row]:
    """Emails at and around both window starts of every step's minute, over three accounts."""
    rows = []
    for n, step in enumerate(STEPS):
        minute = floor_minute(start + step)
        for d, delta in enumerate(AROUND):
            for weeks in (1, 2):
                account = (n + d + weeks) % 3 + 1
                rows.append(
                    Row(account, d % 3 + 1, d % 2 == 0, n % 2 == 0, minute - weeks * WEEK + delta)
                )
    return rows


def fresh(engine: Engine, scope: Scope, now: datetime, max_breakdown: int) -> object:
    """A fresh count of a scope's aggregates as of `now`."""
    with snapshot(engine) as session:
        return to_data(compute_scope(session, scope, now, max_breakdown), Kind.AGGREGATES)


def mismatches(
    reader: DashboardReader, aio: AsyncDashboardReader, engine: Engine, now: datetime
) -> list[str]:
    """Each scope whose read (sync or asyncio) differs from a fresh count as of `now`."""
    wrong = []
    for scope in SCOPES:
        expected = fresh(engine, scope, now, reader.settings.max_breakdown)
        got = reader.get_aggregates(scope)
        got_async = asyncio.run(aio.get_aggregates(scope))
        for name, value in (("sync", got), ("asyncio", got_async)):
            if value.data != expected or value.source != "cache":
                wrong.append(f"{name} {scope}: {value.source} {value.data}, fresh {expected}")
    return wrong


def test_every_read_equals_a_fresh_count_as_of_now_for_a_day_without_a_pass(
    cdc_settings: Settings,
    wal_engine: Engine,
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Steps across minute starts, hours and a day: reads equal fresh counts as of each step,
    while raw SQL (through the WAL) and app events create, re-date and delete emails at the
    window starts; no recompute happens (every value keeps its generation)."""
    settings = replace(cdc_settings, refresh_seconds=86400, ttl_seconds=3 * 86400)
    start = floor_minute(clock.now()) + timedelta(seconds=20)
    held = HeldClock(monkeypatch, start)
    add_categories(wal_engine, ["Work", "Personal", "Promotions"])
    add_emails(wal_engine, boundary_rows(start))
    warm(settings)
    publisher = EventPublisher(settings)
    factory = tracked_sessions(wal_engine, publisher, deltas=True)
    reader = DashboardReader.from_settings(settings)
    aio = AsyncDashboardReader.from_settings(settings)
    try:
        with consuming(settings):
            passed = generations(redis_client, settings, list(SCOPES))  # the slot's first pass
            for n, step in enumerate(STEPS):
                held.at = start + step
                minute = floor_minute(held.at)
                edge = minute - WEEK if n % 2 else minute - 2 * WEEK
                with wal_engine.begin() as conn:
                    conn.execute(
                        text(
                            "INSERT INTO emails (message_id, account_id, category_id, is_unread,"
                            " is_auto_labeled, created_at, updated_at)"
                            " VALUES (:m, :a, 1, true, false, :edge, now())"
                        ),
                        {"m": f"<s{n}@x>", "a": n % 3 + 1, "edge": edge},
                    )
                with wal_engine.begin() as conn:
                    conn.execute(
                        text(
                            "UPDATE emails SET created_at = :edge - interval '1 microsecond'"
                            " WHERE id = (SELECT min(id) + :n FROM emails)"
                        ),
                        {"edge": edge, "n": n},
                    )
                with wal_engine.begin() as conn:
                    conn.execute(
                        text("DELETE FROM emails WHERE id = (SELECT min(id) + :n FROM emails)"),
                        {"n": 20 + n},
                    )
                with factory() as session, session.begin():
                    moved = session.get(Email, 40 + n)
                    assert moved is not None
                    moved.created_at = edge + timedelta(seconds=n % 2)
                    session.delete(session.get(Email, 60 + n))
                    session.add(
                        Email(
                            message_id=f"<e{n}@x>",
                            account_id=(n + 1) % 3 + 1,
                            category_id=2,
                            is_unread=False,
                            is_auto_labeled=True,
                            created_at=edge - timedelta(microseconds=1),
                            updated_at=edge,
                        )
                    )
                wait_until(
                    lambda: not mismatches(reader, aio, wal_engine, held.at),
                    f"every read equal to a fresh count as of {held.at}",
                    seen=lambda: mismatches(reader, aio, wal_engine, held.at),
                )
        assert generations(redis_client, settings, list(SCOPES)) == passed
    finally:
        publisher.close()
        reader.close()
        asyncio.run(aio.aclose())
