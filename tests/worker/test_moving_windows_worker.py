"""Weekly windows move with the real clock across real processes: a worker warms every scope
once; emails cross a window start at the next minute starts, one of them created by an app
event after the pass; a reader in another process then reads exactly a fresh count as of its
read, served from the cache with no recompute (the generations the pass wrote)."""

from __future__ import annotations

import json
import multiprocessing
import time
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import redis
from sqlalchemy import Engine

from dashcache import clock
from dashcache.config import Settings
from dashcache.events import EventPublisher
from dashcache.keys import KeySchema, Kind, Scope
from dashcache.models import Email
from dashcache.recompute import snapshot, to_data
from dashcache.stats import compute_scope
from dashcache.windows import floor_minute
from tests.eventing import tracked_sessions
from tests.helpers import Row, add_categories, add_emails, wait_until
from tests.processes import worker_process
from tests.readers import read_in_one_minute

spawn = multiprocessing.get_context("spawn")
WEEK = timedelta(days=7)
SCOPES: list[Scope] = [None, 1, 2]


def crossing_rows(start: datetime) -> list[Row]:
    """Emails that leave this week, and the week before, at each of the next five minute
    starts (one second before the window start of that minute), and some that stay."""
    rows = []
    for k in range(1, 6):
        minute = floor_minute(start) + timedelta(minutes=k)
        for weeks in (1, 2):
            rows += [
                Row(1 + n % 2, 1, n % 2 == 0, False, minute - weeks * WEEK - timedelta(seconds=1))
                for n in range(k + weeks)
            ]
    rows += [
        Row(1, 1, True, False, start - timedelta(days=3)),
        Row(2, 1, False, True, start - timedelta(days=10)),
    ]
    return rows


def fresh(engine: Engine, scope: Scope, now: datetime) -> object:
    with snapshot(engine) as session:
        return to_data(compute_scope(session, scope, now, 50), Kind.AGGREGATES)


def test_a_reader_in_another_process_reads_the_windows_as_of_now_with_no_recompute(
    settings: Settings, pg: Engine, redis_client: redis.Redis
) -> None:
    """After a minute start has passed since the only pass, every scope read in another process
    equals a fresh count as of that read and differs from one as of the pass."""
    settings = replace(settings, refresh_seconds=86400)
    start = clock.now()
    add_categories(pg, ["work"])
    add_emails(pg, crossing_rows(start))
    keys = KeySchema(settings.key_prefix)
    publisher = EventPublisher(settings)
    try:
        with worker_process(settings):
            wait_until(
                lambda: all(redis_client.exists(keys.value(Kind.AGGREGATES, s)) for s in SCOPES),
                "the start-up pass to warm every scope",
            )
            passed = {s: redis_client.get(keys.value(Kind.AGGREGATES, s)) for s in SCOPES}
            with tracked_sessions(pg, publisher, deltas=True)() as session:
                late = floor_minute(start) + timedelta(minutes=3) - WEEK - timedelta(seconds=1)
                session.add(
                    Email(
                        message_id="<late@x>",
                        account_id=2,
                        category_id=1,
                        is_unread=True,
                        is_auto_labeled=False,
                        created_at=late,
                        updated_at=start,
                    )
                )
                session.commit()
            publisher.flush()
            computed_at = datetime.fromisoformat(json.loads(passed[None] or b"{}")["computed_at"])
            crossed = floor_minute(computed_at) + timedelta(minutes=1, seconds=1)
            while clock.now() < crossed:
                time.sleep(0.2)
            results: Any = spawn.Queue()
            child = spawn.Process(
                target=read_in_one_minute, args=(settings.to_env(), SCOPES, results)
            )
            child.start()
            began, reads = results.get(timeout=120)
            child.join(timeout=60)
    finally:
        publisher.close()
    assert floor_minute(began) > floor_minute(computed_at)
    moved = 0
    for scope, data, generation, source in reads:
        stored = json.loads(passed[scope] or b"{}")
        assert (source, generation) == ("cache", stored["generation"]), (scope, source)
        assert data == fresh(pg, scope, began), (scope, data)
        moved += data != fresh(pg, scope, computed_at)
    assert moved, "no scope's windows moved: the test placed no email across a window start"
