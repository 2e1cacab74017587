"""Delta maintenance with real PostgreSQL and Redis: email events with a txid update the cached
values without reading `emails`, exactly as a recompute would, whatever the interleaving."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from sqlalchemy import Engine, event, select, update
from sqlalchemy.orm import Session, sessionmaker

from dashcache import clock
from dashcache.config import Settings
from dashcache.dispatch import WARM_ALL, TaskSender
from dashcache.events import (
    EmailCreated,
    EmailRow,
    EmailUpdated,
    Event,
    EventPublisher,
    track_mutations,
)
from dashcache.keys import KeySchema, Kind, Scope
from dashcache.models import Category, Email
from dashcache.reader import DashboardReader
from dashcache.recompute import recompute_every_scope, recompute_scope
from dashcache.store import RedisStore
from tests.cli.test_cli import run
from tests.eventing import envelope, markers, tracked_sessions, truth
from tests.helpers import WAIT_SECONDS, add_categories, count_queries
from tests.processes import worker_process

SCOPES: tuple[Scope, ...] = (1, 2, None)
DAY = timedelta(days=1)


@pytest.fixture
def publisher(settings: Settings) -> Iterator[EventPublisher]:
    """An event publisher for the test's settings."""
    made = EventPublisher(settings)
    yield made
    made.close()


@pytest.fixture
def store(settings: Settings, redis_client: redis.Redis) -> RedisStore:
    """The store of the test's prefix."""
    return RedisStore(redis_client, KeySchema(settings.key_prefix), settings.ttl_seconds)


def email(account_id: int, category_id: int | None, days_ago: float, unread: bool = True) -> Email:
    created = clock.now() - days_ago * DAY
    return Email(
        message_id=f"<{account_id}-{category_id}-{days_ago}-{unread}@d>",
        account_id=account_id,
        category_id=category_id,
        is_unread=unread,
        is_auto_labeled=False,
        created_at=created,
        updated_at=created,
    )


def assert_exact(client: redis.Redis, settings: Settings, pg: Engine) -> None:
    """Every value of SCOPES equals a recount as of its own computed_at."""
    for scope in SCOPES:
        for kind in Kind:
            stored = envelope(client, settings, kind, scope)
            expected = truth(pg, kind, scope, stored["computed_at"], settings.max_breakdown)
            assert stored["data"] == expected, (kind, scope)


def generations(client: redis.Redis, settings: Settings) -> list[int]:
    return [envelope(client, settings, k, s)["generation"] for k in Kind for s in SCOPES]


def warm(pg: Engine, store: RedisStore, settings: Settings) -> None:
    with sessionmaker(pg).begin() as session:
        session.add_all([email(1, 1, 1), email(1, 2, 9, False), email(2, 1, 3), email(2, None, 20)])
    recompute_every_scope(pg, store, settings.max_breakdown)


def test_each_event_kind_and_field_change_equals_a_recompute(
    settings: Settings,
    pg: Engine,
    redis_client: redis.Redis,
    publisher: EventPublisher,
    store: RedisStore,
) -> None:
    """Creates, deletes and changes of every counted field (windows crossed both ways, a
    category gained and lost) update every value by deltas, with no read of `emails`."""
    add_categories(pg, ["work", "news", "social"])
    warm(pg, store, settings)
    sessions = tracked_sessions(pg, publisher, deltas=True)
    before = generations(redis_client, settings)
    changes: list[Callable[[Session], Any]] = [
        lambda s: s.add(email(1, 3, 2)),
        lambda s: s.add(email(2, None, 10)),
        lambda s: setattr(s.get_one(Email, 1), "is_unread", False),
        lambda s: setattr(s.get_one(Email, 2), "is_auto_labeled", True),
        lambda s: setattr(s.get_one(Email, 3), "category_id", 2),
        lambda s: setattr(s.get_one(Email, 3), "category_id", None),
        lambda s: setattr(s.get_one(Email, 4), "category_id", 3),
        lambda s: setattr(s.get_one(Email, 1), "created_at", clock.now() - 8 * DAY),
        lambda s: setattr(s.get_one(Email, 2), "created_at", clock.now() - 30 * DAY),
        lambda s: setattr(s.get_one(Email, 4), "created_at", clock.now() - DAY),
        lambda s: s.delete(s.get_one(Email, 1)),
        lambda s: s.delete(s.get_one(Email, 5)),
    ]
    seen = count_queries(pg)
    for change in changes:
        start = len(seen)
        with sessions.begin() as session:
            change(session)
        assert [query for query in seen[start:] if "count(" in query] == []
        assert_exact(redis_client, settings, pg)
    assert generations(redis_client, settings) == before  # no value was recomputed
    assert markers(redis_client, settings) == []


def test_duplicate_reordered_and_late_events_change_nothing(
    settings: Settings,
    pg: Engine,
    redis_client: redis.Redis,
    publisher: EventPublisher,
    store: RedisStore,
) -> None:
    """A second event with the same (txid, email_id) is a no-op; events of two transactions
    arriving in either order give the same value; an event every value already saw is late."""
    add_categories(pg, ["work", "news"])
    warm(pg, store, settings)
    captured: list[list[Event]] = []
    factory = sessionmaker(pg, expire_on_commit=False)
    track_mutations(factory, captured.append)
    with factory.begin() as session:
        session.get_one(Email, 1).is_unread = False
    with factory.begin() as session:
        session.get_one(Email, 1).category_id = None
    first, second = captured[0], captured[1]
    publisher.publish_many(second)
    publisher.publish_many(first)
    publisher.publish_many(first + second)
    assert_exact(redis_client, settings, pg)
    recompute_every_scope(pg, store, settings.max_breakdown)  # sees both: prunes the log
    publisher.publish_many(first)
    assert_exact(redis_client, settings, pg)
    assert not redis_client.hexists(KeySchema(settings.key_prefix).deltas(None), "x")


def test_deltas_before_the_first_value_exists_are_applied_to_it(
    settings: Settings,
    pg: Engine,
    redis_client: redis.Redis,
    publisher: EventPublisher,
    store: RedisStore,
    pause_reads: Callable[[Engine], Pause],
) -> None:
    """A delta logged before any value of its scope exists is applied to the first value whose
    snapshot did not see it, and not to one whose snapshot did."""
    add_categories(pg, ["work"])
    with sessionmaker(pg).begin() as session:
        session.add(email(1, 1, 1))
    paused = pause_reads(pg)
    computing = threading.Thread(target=recompute_scope, args=(pg, store, 1, 50))
    computing.start()
    assert paused.reached.wait(WAIT_SECONDS), "the recompute never reached its count"
    # Its snapshot is taken: the next commit is not in it.
    sessions = tracked_sessions(pg, publisher, deltas=True)
    with sessions.begin() as session:
        session.add(email(1, 1, 2))
    assert envelope(redis_client, settings, Kind.AGGREGATES, 1) == {}
    paused.go.set()
    computing.join(WAIT_SECONDS)
    assert not computing.is_alive(), "the recompute did not finish once let go"
    recompute_scope(pg, store, 2, 50)
    recompute_scope(pg, store, None, 50)
    assert_exact(redis_client, settings, pg)


class Pause:
    """Holds the next count of `emails` on an engine (its snapshot already taken: the
    `pg_current_snapshot()` ran first) until `go` is set."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self.go = threading.Event()
        self.armed = True

    def __call__(self, _conn: object, _cursor: object, statement: str, *_: object) -> None:
        if self.armed and "FROM emails" in statement and "count(" in statement:
            self.armed = False
            self.reached.set()
            self.go.wait(WAIT_SECONDS)


@pytest.fixture
def pause_reads() -> Iterator[Callable[[Engine], Pause]]:
    """Arms a Pause on an engine; removed after the test."""
    armed: list[tuple[Engine, Pause]] = []

    def arm(engine: Engine) -> Pause:
        pause = Pause()
        event.listen(engine, "before_cursor_execute", pause)
        armed.append((engine, pause))
        return pause

    yield arm
    for engine, pause in armed:
        pause.go.set()
        event.remove(engine, "before_cursor_execute", pause)


WAYS = ("fresh", "fallback", "pass")


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("side", ["commit after snapshot", "event after write"])
def test_a_delta_racing_a_recompute_is_counted_once(
    settings: Settings,
    pg: Engine,
    redis_client: redis.Redis,
    publisher: EventPublisher,
    store: RedisStore,
    reader: DashboardReader,
    pause_reads: Callable[[Engine], Pause],
    way: str,
    side: str,
) -> None:
    """A recompute (a fresh read, a reader's fallback, the scheduled pass) racing a delta: when
    the change commits after its snapshot, the delta applied before its write is applied again
    on top of it; when its snapshot saw the change, the late delta is not applied to it."""
    add_categories(pg, ["work", "news"])
    warm(pg, store, settings)
    captured: list[list[Event]] = []
    factory = sessionmaker(pg, expire_on_commit=False)
    track_mutations(factory, captured.append)
    engine = pg if way == "pass" else reader.engine
    paused = pause_reads(engine)
    if way == "fallback":
        redis_client.delete(*(store.keys.value(kind, None) for kind in Kind))

    def recompute() -> None:
        if way == "pass":
            recompute_every_scope(pg, store, settings.max_breakdown)
        elif way == "fresh":
            reader.get_aggregates(None, fresh=True)
        else:
            reader.get_aggregates(None)

    if side == "commit after snapshot":
        computing = threading.Thread(target=recompute)
        computing.start()
        assert paused.reached.wait(WAIT_SECONDS), "the recompute never reached its count"
        with factory.begin() as session:
            session.get_one(Email, 1).category_id = 2
            session.add(email(2, 2, 1))
        publisher.publish_many(captured.pop())
        paused.go.set()
        computing.join(WAIT_SECONDS)
        assert not computing.is_alive(), "the recompute did not finish once let go"
    else:
        paused.armed = False
        with pg.connect() as older:  # an older transaction in progress keeps xmin below the change
            older.exec_driver_sql("SELECT pg_current_xact_id()")
            with factory.begin() as session:
                session.get_one(Email, 1).category_id = 2
                session.add(email(2, 2, 1))
            recompute()
            publisher.publish_many(captured.pop())
            older.rollback()
    if way != "pass":
        recompute_scope(pg, store, None, settings.max_breakdown, (Kind.BREAKDOWN,))
    assert_exact(redis_client, settings, pg)


def test_single_publishes_are_batched_and_flushed(
    settings: Settings, pg: Engine, redis_client: redis.Redis, store: RedisStore
) -> None:
    """Many single publish calls are sent in a few batches in the background; flush waits for
    them; invalid events still raise at once."""
    add_categories(pg, ["work", "news"])
    warm(pg, store, settings)
    publisher = EventPublisher(settings)
    row = EmailRow(None, True, False, clock.now() - 40 * DAY)
    created = [EmailCreated(1, 1000 + n, row, txid=2**40 + n) for n in range(500)]
    for item in created:
        publisher.publish(item)
    with pytest.raises(Exception, match="event must be one of"):
        publisher.publish("not an event")  # type: ignore[arg-type]
    assert publisher.flush(20)
    total = envelope(redis_client, settings, Kind.AGGREGATES, 1)["data"]["total_emails"]
    publisher.publish(
        EmailUpdated(1, 1000, row, EmailRow(None, False, False, row.created_at), txid=2**41)
    )
    publisher.close()  # sends what is pending
    after = envelope(redis_client, settings, Kind.AGGREGATES, 1)["data"]
    assert total == 2 + 500
    assert after["unread_count"] == 1 + 499


def test_sqlite_values_carry_no_state_and_events_recompute(
    settings: Settings, sqlite_engine: Engine, redis_client: redis.Redis, store: RedisStore
) -> None:
    """On SQLite a value has no snapshot, so no delta state: its events take the recompute path."""
    with sessionmaker(sqlite_engine).begin() as session:
        session.add(Category(name="work"))
        session.add(email(1, 1, 1))
    recompute_scope(sqlite_engine, store, 1, 50)
    assert redis_client.get(store.keys.value(Kind.AGGREGATES, 1))
    assert not redis_client.exists(store.keys.state(Kind.AGGREGATES, 1))
    with sessionmaker(sqlite_engine).begin() as session:
        assert session.scalar(select(Email.id)) == 1


def test_an_unpublished_mutation_is_counted_as_drift_and_repaired(
    settings: Settings, pg: Engine, redis_client: redis.Redis, publisher: EventPublisher
) -> None:
    """With a real worker: a published change leaves the pass nothing to repair; a bulk update
    nobody published is found by the next pass, logged with its key and fields, counted, and
    repaired."""
    add_categories(pg, ["work", "news"])
    with sessionmaker(pg).begin() as session:
        session.add_all([email(1, 1, 1), email(2, 2, 3)])
    sessions = tracked_sessions(pg, publisher, deltas=True)
    with worker_process(settings) as worker:
        worker.wait_for("recompute.finished")
        with sessions.begin() as session:
            session.get_one(Email, 1).is_unread = False
        send_pass(settings)
        worker.lines_with("recompute.finished", 2)
        assert not [line for line in worker.lines if "recompute.drift" in line]
        with pg.begin() as conn:
            conn.execute(update(Email).where(Email.account_id == 2).values(category_id=1))
        send_pass(settings)
        worker.wait_for("recompute.drift")
        worker.lines_with("recompute.finished", 3)
    drifted = [json.loads(line) for line in worker.lines if "recompute.drift" in line]
    prefix = KeySchema(settings.key_prefix)
    assert {(entry["key"], tuple(entry["fields"])) for entry in drifted} == {
        (prefix.value(Kind.BREAKDOWN, 2), ("news", "work")),
        (prefix.value(Kind.BREAKDOWN, None), ("news", "work")),
    }
    assert_exact(redis_client, settings, pg)
    code, out, _ = run(settings, "stats", "--json")
    assert code == 0
    assert json.loads(out)["drift"] == {"aggregates": 0, "breakdown": 2}


def send_pass(settings: Settings) -> None:
    sender = TaskSender(settings)
    sender.send(WARM_ALL, [], settings.schedule_queue)
    sender.close()
