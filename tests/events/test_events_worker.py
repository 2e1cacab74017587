"""Events end to end with a real worker, Redis and PostgreSQL: targeted, coalesced, fenced."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from typing import Any

import pytest
import redis
from sqlalchemy import Engine, event, insert, text, update

from dashcache.bench.event_lag import event_runs
from dashcache.config import Settings
from dashcache.db import make_engine
from dashcache.dispatch import INGEST_EVENTS, TaskSender
from dashcache.events import EmailCreated, EmailRow, EventPublisher, encode_event
from dashcache.events.coalesce import Run
from dashcache.keys import ACCOUNTS_SCOPE as ACC
from dashcache.keys import KeySchema, Kind
from dashcache.models import Category, Email
from dashcache.recompute import recompute_scope
from dashcache.store import RedisStore
from tests.eventing import envelope, markers, settled, start_gaps, tracked_sessions
from tests.helpers import (
    NOW,
    WAIT_SECONDS,
    Row,
    add_categories,
    add_emails,
    lock_waiters,
    wait_until,
)
from tests.processes import worker_process

AGG, BD = Kind.AGGREGATES, Kind.BREAKDOWN
EVERY_KEY = [(kind, scope) for kind in (AGG, BD) for scope in (1, 2, None)]


@pytest.fixture
def publisher(settings: Settings) -> Any:
    """An event publisher for the test's settings."""
    made = EventPublisher(settings)
    yield made
    made.close()


def generations(client: redis.Redis, settings: Settings) -> dict[tuple[Kind, Any], int]:
    return {key: envelope(client, settings, *key)["generation"] for key in EVERY_KEY}


def test_only_dirty_keys_are_recomputed(
    settings: Settings, pg: Engine, redis_client: redis.Redis, publisher: EventPublisher
) -> None:
    """A flag flip, a category move and a rename each rewrite exactly the keys of the table."""
    add_categories(pg, ["work", "news"])
    add_emails(pg, [Row(1, 1, True, False, NOW), Row(2, 2, False, True, NOW)])
    sessions = tracked_sessions(pg, publisher)

    def change(apply: Any) -> dict[tuple[Kind, Any], int]:
        before = generations(redis_client, settings)
        with sessions() as session:
            apply(session)
            session.commit()
        wait_until(lambda: settled(redis_client, settings, pg, EVERY_KEY), "the change to settle")
        after = generations(redis_client, settings)
        return {key for key in EVERY_KEY if after[key] != before[key]}

    with worker_process(settings) as worker:
        worker.wait_for("recompute.finished")
        flipped = change(lambda s: setattr(s.get_one(Email, 1), "is_unread", False))
        moved = change(lambda s: setattr(s.get_one(Email, 1), "category_id", 2))
        renamed = change(lambda s: setattr(s.get_one(Category, 2), "name", "mail"))
    assert flipped == {(AGG, 1), (AGG, None)}
    assert moved == {(BD, 1), (BD, None)}
    assert renamed == {(BD, 1), (BD, 2), (BD, None)}
    assert envelope(redis_client, settings, BD, 2)["data"] == [["mail", 1], ["work", 0]]
    assert event_runs(worker.lines) == {"a1": 2, "all": 2, "every": 1}


def test_burst_is_coalesced_and_ends_right(
    settings: Settings, pg: Engine, redis_client: redis.Redis, publisher: EventPublisher
) -> None:
    """10,000 events in commits of 1,000 with gaps: no two runs of a key start less than a
    debounce apart (their own start times, on the Redis clock), and the value ends right."""
    add_categories(pg, ["work"])
    add_emails(pg, [Row(1, 1, True, False, NOW)])
    row = EmailRow(1, True, True, NOW)
    values = {"account_id": 1, "category_id": 1, "is_unread": True, "is_auto_labeled": True}
    with worker_process(settings) as worker:
        worker.wait_for("recompute.finished")
        for chunk in range(10):
            batch = [
                {**values, "message_id": f"<b{chunk}-{n}@t>", "created_at": NOW, "updated_at": NOW}
                for n in range(1000)
            ]
            with pg.begin() as conn:
                ids = conn.scalars(insert(Email).returning(Email.id), batch).all()
            for email_id in ids:
                publisher.publish(EmailCreated(1, email_id, row))
        keys = [(kind, scope) for kind in (AGG, BD) for scope in (1, None)]
        wait_until(lambda: settled(redis_client, settings, pg, keys), "the burst to settle")
    runs = event_runs(worker.lines)  # after stop: every run's finished line is in
    gaps = start_gaps(worker.lines)
    assert envelope(redis_client, settings, AGG, 1)["data"]["total_emails"] == 10_001
    assert set(runs) == {"a1", "all"}
    assert all(gap >= settings.event_debounce_ms for each in gaps.values() for gap in each), gaps
    assert {target for target, _kind in gaps} == {ACC, "all"}


def test_event_during_a_running_recompute_causes_exactly_one_more_run(
    settings: Settings, pg: Engine, redis_client: redis.Redis, publisher: EventPublisher
) -> None:
    """A mutation committed while a run is blocked mid-read is picked up by one trailing run."""
    # The queued scope's pending marker must outlive the blocked run, however slow the pickup.
    settings = replace(settings, event_max_wait_ms=120_000)
    add_categories(pg, ["work"])
    add_emails(pg, [Row(1, 1, True, False, NOW), Row(1, 1, True, False, NOW)])
    runs_sent: list[list[Run]] = []
    sessions = tracked_sessions(pg, publisher, runs_sent)
    keys = KeySchema(settings.key_prefix)
    with worker_process(settings) as worker:
        worker.wait_for("recompute.finished")
        blocker = pg.connect()
        try:
            blocker.execute(text("LOCK TABLE categories IN ACCESS EXCLUSIVE MODE"))
            with sessions() as session:  # the run reads emails, then waits on categories
                session.get_one(Email, 1).is_unread = False
                session.commit()
            wait_until(lambda: lock_waiters(pg) > 0, "a run blocked in its read")
            running = [k for k in (ACC, "all") if redis_client.exists(keys.running(AGG, k))]
            assert len(running) == 1
            with sessions() as session:
                session.get_one(Email, 2).is_unread = False
                session.commit()
        finally:
            blocker.rollback()
            blocker.close()
        wait_until(lambda: settled(redis_client, settings, pg, [(AGG, 1)]), "the trailing run")
    runs = event_runs(worker.lines)  # after stop: the last run's finished line is in
    assert envelope(redis_client, settings, AGG, 1)["data"]["unread_count"] == 0
    assert runs_sent[1] == [Run(running[0], (AGG,), 0.25)]  # the other scope was still queued
    assert runs["a1" if running[0] == ACC else "all"] == 2


def test_slow_recompute_started_before_a_mutation_cannot_overwrite(
    settings: Settings,
    pg: Engine,
    pg_url: str,
    redis_client: redis.Redis,
    publisher: EventPublisher,
) -> None:
    """A read begun before a mutation finishes after the mutation's run: the newer value stays."""
    add_categories(pg, ["work"])
    add_emails(pg, [Row(1, 1, True, False, NOW)])
    sessions = tracked_sessions(pg, publisher)
    entered, release = threading.Event(), threading.Event()
    slow_engine = make_engine(pg_url)

    @event.listens_for(slow_engine, "before_cursor_execute")
    def _pause_before_categories(*args: Any) -> None:
        if "FROM categories" in args[2] and not release.is_set():
            entered.set()
            release.wait(WAIT_SECONDS)

    store = RedisStore(redis_client, KeySchema(settings.key_prefix), settings.ttl_seconds)
    results: list[Any] = []
    slow = threading.Thread(
        target=lambda: results.append(recompute_scope(slow_engine, store, 1, 50, (AGG,)))
    )
    with worker_process(settings) as worker:
        worker.wait_for("recompute.finished")
        slow.start()
        assert entered.wait(WAIT_SECONDS), "the slow recompute never reached its categories read"
        with sessions() as session:
            session.get_one(Email, 1).is_unread = False
            session.commit()
        wait_until(lambda: settled(redis_client, settings, pg, [(AGG, 1)]), "the event's run")
        fresh = envelope(redis_client, settings, AGG, 1)
        release.set()
        slow.join(WAIT_SECONDS)
        assert not slow.is_alive(), "the slow recompute did not finish once released"
    slow_engine.dispose()
    (result,) = results
    assert result.stats[1].aggregates["unread_count"] == 1  # it read before the mutation
    assert result.generation < fresh["generation"]
    assert result.fenced == 1
    assert envelope(redis_client, settings, AGG, 1) == fresh
    assert fresh["data"]["unread_count"] == 0
    assert event_runs(worker.lines)["a1"] == 1


def test_bad_payloads_are_dead_lettered_and_counted(
    settings: Settings, pg: Engine, redis_client: redis.Redis
) -> None:
    """Each bad batch is rejected, kept with its reason and counted; the worker keeps working."""
    settings = replace(settings, event_max_batch=3)
    add_categories(pg, ["work"])
    add_emails(pg, [Row(1, 1, True, False, NOW)])
    good = encode_event(EmailCreated(1, 1, EmailRow(1, True, False, NOW)))
    bad = [
        ([{**good, "type": "email.archived"}], "events[0].type"),
        ([{k: v for k, v in good.items() if k != "after"}], "events[0].after"),
        ([{**good, "after": {**good["after"], "is_unread": "yes"}}], "events[0].after.is_unread"),
        ([{**good, "account_id": -4}], "events[0].account_id"),
        ([good] * 4, "events"),
        (good, "events"),
    ]
    keys = KeySchema(settings.key_prefix)
    sender = TaskSender(settings)
    with worker_process(settings) as worker:
        worker.wait_for("recompute.finished")
        with pg.begin() as conn:
            conn.execute(update(Email).values(is_unread=False))
        for payload, _field in bad:
            sender.send(INGEST_EVENTS, [payload], settings.events_queue)
        sender.send(INGEST_EVENTS, [[good]], settings.events_queue)
        wait_until(
            lambda: (
                envelope(redis_client, settings, AGG, 1)["data"]["unread_count"] == 0
                and settled(redis_client, settings, pg, [(AGG, 1), (AGG, None)])
            ),
            "the good batch's recompute",
        )
        rejected = worker.lines_with('"event.rejected"', len(bad))
        alive = worker.popen.poll() is None
    sender.close()
    entries = [json.loads(raw) for raw in redis_client.lrange(keys.dead_letters, 0, -1)]
    assert [entry["field"] for entry in reversed(entries)] == [field for _, field in bad]
    assert all(entry["reason"] and entry["payload"] for entry in entries)
    assert redis_client.hget(keys.counters, "events.rejected") == str(len(bad)).encode()
    assert len(rejected) == len(bad)
    assert alive
    assert not markers(redis_client, settings)
