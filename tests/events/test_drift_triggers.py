"""Drift is counted wherever a recompute finds it: a fresh read, a reader's fallback (sync and
asyncio) and an event run log `recompute.drift` with their trigger and count it by trigger, and
the Prometheus family carries the trigger label."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
import redis
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import sessionmaker

from dashcache import clock
from dashcache.async_reader import AsyncDashboardReader
from dashcache.config import Settings
from dashcache.events import (
    CategoriesChanged,
    CategoryChange,
    EmailRow,
    EmailUpdated,
    EventPublisher,
)
from dashcache.keys import KeySchema, Kind
from dashcache.models import Category, Email
from dashcache.observe.prometheus import DashcacheCollector
from dashcache.reader import DashboardReader
from dashcache.recompute import recompute_every_scope
from dashcache.store import RedisStore
from tests.async_readers import with_reader
from tests.cli.test_cli import run
from tests.helpers import add_categories, wait_until
from tests.processes import worker_process


@pytest.fixture
def warmed(settings: Settings, pg: Engine, redis_client: redis.Redis) -> KeySchema:
    """Two accounts' emails, every scope warmed; then a bulk update nobody published moves
    account 2's emails to another category."""
    add_categories(pg, ["work", "news"])
    now = clock.now()
    with sessionmaker(pg).begin() as session:
        session.add_all(
            [
                Email(
                    message_id=f"<{n}@drift>",
                    account_id=1 + n % 2,
                    category_id=1 + n % 2,
                    is_unread=True,
                    is_auto_labeled=False,
                    created_at=now - timedelta(days=n),
                    updated_at=now,
                )
                for n in range(4)
            ]
        )
    keys = KeySchema(settings.key_prefix)
    recompute_every_scope(pg, RedisStore(redis_client, keys, settings.ttl_seconds), 50)
    with pg.begin() as conn:
        conn.execute(update(Email).where(Email.account_id == 2).values(category_id=1))
    return keys


def drift_by_trigger(settings: Settings) -> dict[str, Any]:
    code, out, _ = run(settings, "stats", "--json")
    assert code == 0
    body = json.loads(out)
    assert body["drift"] == {
        kind: sum(by_kind.get(kind, 0) for by_kind in body["drift_by_trigger"].values())
        for kind in ("aggregates", "breakdown")
    }
    return body["drift_by_trigger"]


def drift_logs(logs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["key"], e["trigger"]) for e in logs if e.get("event") == "recompute.drift"]


def test_a_fresh_read_counts_the_drift_it_repairs(
    settings: Settings,
    warmed: KeySchema,
    reader: DashboardReader,
    logs: list[dict[str, Any]],
) -> None:
    """A fresh=True read writing over a drifted value logs and counts it as `fresh`."""
    assert reader.get_category_breakdown(account_id=2, fresh=True).data == {"work": 2, "news": 0}
    assert drift_logs(logs) == [(warmed.value(Kind.BREAKDOWN, 2), "fresh")]
    reader.metrics.flush()
    assert drift_by_trigger(settings) == {"fresh": {"breakdown": 1}}


def test_a_fallback_counts_the_drift_it_repairs_sync_and_asyncio(
    settings: Settings,
    warmed: KeySchema,
    redis_client: redis.Redis,
    reader: DashboardReader,
    logs: list[dict[str, Any]],
) -> None:
    """A reader's fallback on an evicted value whose state drifted counts it as `fallback`,
    from the sync reader and from the asyncio one."""
    redis_client.delete(warmed.value(Kind.BREAKDOWN, 2))
    assert reader.get_category_breakdown(account_id=2).data == {"work": 2, "news": 0}
    reader.metrics.flush()
    redis_client.delete(warmed.value(Kind.BREAKDOWN, None))

    async def read(async_reader: AsyncDashboardReader) -> object:
        value = await async_reader.get_category_breakdown()
        async_reader.metrics.flush()
        return value.data

    assert with_reader(settings, read) == {"work": 4, "news": 0}
    assert drift_logs(logs) == [
        (warmed.value(Kind.BREAKDOWN, 2), "fallback"),
        (warmed.value(Kind.BREAKDOWN, None), "fallback"),
    ]
    assert drift_by_trigger(settings) == {"fallback": {"breakdown": 2}}


@pytest.fixture
def publisher(settings: Settings) -> Iterator[EventPublisher]:
    """An event publisher for the test's settings."""
    made = EventPublisher(settings)
    yield made
    made.close()


def test_an_event_run_counts_the_drift_it_repairs(
    settings: Settings,
    pg: Engine,
    redis_client: redis.Redis,
    warmed: KeySchema,
    publisher: EventPublisher,
) -> None:
    """With a real worker: after its first pass repaired the drift (as `schedule`), a second
    unpublished update is found by the breakdown run a category event starts, logged and counted
    as `event`; the scrape shows both labels."""
    with worker_process(settings) as worker:
        worker.lines_with("recompute.drift", 2)
        worker.wait_for("recompute.finished")
        with pg.begin() as conn:
            conn.execute(update(Email).where(Email.account_id == 2).values(category_id=2))
        publisher.publish(CategoriesChanged((1,), CategoryChange.RENAMED))
        publisher.flush()
        worker.lines_with("recompute.drift", 4)
        worker.lines_with("recompute.finished", 2)
    drifted = [json.loads(line) for line in worker.lines if "recompute.drift" in line]
    assert sorted((e["key"], e["trigger"]) for e in drifted) == sorted(
        (warmed.value(Kind.BREAKDOWN, scope), trigger)
        for scope in (2, None)
        for trigger in ("schedule", "event")
    )
    assert drift_by_trigger(settings) == {
        "schedule": {"breakdown": 2},
        "event": {"breakdown": 2},
    }
    registry = CollectorRegistry()
    registry.register(DashcacheCollector(redis_client, warmed))
    scraped = generate_latest(registry).decode()
    assert 'dashcache_drift_total{kind="breakdown",trigger="event"} 2.0' in scraped
    assert 'dashcache_drift_total{kind="breakdown",trigger="schedule"} 2.0' in scraped
    assert 'dashcache_drift_total{kind="aggregates",trigger="fresh"} 0.0' in scraped


def test_published_changes_without_deltas_are_not_drift(
    settings: Settings,
    pg: Engine,
    redis_client: redis.Redis,
    warmed: KeySchema,
    publisher: EventPublisher,
    reader: DashboardReader,
) -> None:
    """With a real worker: after the first pass repaired the fixture's drift, an email update
    published without a txid and a category rename reach the values through event runs that
    count no drift (the difference is what was published); the values are right."""
    with worker_process(settings) as worker:
        worker.lines_with("recompute.drift", 2)
        worker.wait_for("recompute.finished")
        with pg.begin() as conn:
            email = conn.execute(select(Email).where(Email.account_id == 1)).first()
            assert email is not None
            conn.execute(update(Email).where(Email.id == email.id).values(is_unread=False))
            conn.execute(update(Category).where(Category.id == 2).values(name="letters"))
        row = EmailRow(email.category_id, True, False, email.created_at)
        publisher.publish_many(
            [
                EmailUpdated(1, email.id, before=row, after=replace(row, is_unread=False)),
                CategoriesChanged((2,), CategoryChange.RENAMED),
            ]
        )
        wait_until(
            lambda: (
                reader.get_aggregates(account_id=1).data["unread_count"] == 1
                and "letters" in reader.get_category_breakdown().data
            ),
            "the event runs to write the published changes",
            60,
        )
    drifted = [json.loads(line) for line in worker.lines if "recompute.drift" in line]
    assert {e["trigger"] for e in drifted} == {"schedule"}
    assert drift_by_trigger(settings) == {"schedule": {"breakdown": 2}}


def test_dashcache_warm_counts_the_drift_it_repairs(
    settings: Settings, warmed: KeySchema, logs: list[dict[str, Any]]
) -> None:
    """Raw SQL nobody published: `verify` lists the differences, `warm` repairs them and counts
    them as `warm` (logged, shown by `stats`), and a second `warm` finds none."""
    code, out, _ = run(settings, "verify")
    assert code == 1, out
    assert "2 differ" in out, out
    code, out, err = run(settings, "warm")
    assert code == 0, err
    assert drift_logs(logs) == [
        (warmed.value(Kind.BREAKDOWN, 2), "warm"),
        (warmed.value(Kind.BREAKDOWN, None), "warm"),
    ]
    assert drift_by_trigger(settings) == {"warm": {"breakdown": 2}}
    code, out, _ = run(settings, "stats")
    assert code == 0
    assert "breakdown 2" in out, out
    assert run(settings, "warm")[0] == 0
    assert run(settings, "verify")[0] == 0
    assert drift_by_trigger(settings) == {"warm": {"breakdown": 2}}
