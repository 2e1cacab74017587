"""One bad item never stops the others: bad events, poison dirty-set members, failing accounts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from sqlalchemy import Engine, event, update

from dashcache.config import Settings
from dashcache.db import make_engine
from dashcache.dispatch import RECOMPUTE_TARGETS, TaskSender
from dashcache.errors import InvalidEvent
from dashcache.events import EmailRow, EmailUpdated, EventPublisher
from dashcache.events.coalesce import Run
from dashcache.events.runner import MAX_ACCOUNT_FAILURES, EventRun, recompute_targets
from dashcache.events.targeting import Target
from dashcache.keys import ACCOUNTS_SCOPE, KeySchema, Kind
from dashcache.metrics import metrics_for
from dashcache.models import Email
from dashcache.recompute import recompute_every_scope
from dashcache.store import RedisStore
from tests.eventing import envelope, markers, settled
from tests.helpers import NOW, Row, add_categories, add_emails, wait_until
from tests.processes import worker_process

AGG = Kind.AGGREGATES
ROW = EmailRow(1, True, False, NOW)
READ = EmailRow(1, False, False, NOW)


@pytest.fixture
def publisher(settings: Settings) -> Iterator[EventPublisher]:
    """An event publisher for the test's settings."""
    made = EventPublisher(settings)
    yield made
    made.close()


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: EmailUpdated(-1, 1, ROW, READ), "account_id"),
        (lambda: EmailUpdated("x", 1, ROW, READ), "account_id"),
        (lambda: EmailUpdated(1, -5, ROW, READ), "email_id"),
        (lambda: EmailUpdated(1, 1, ROW, EmailRow(1, "no", False, NOW)), "after.is_unread"),
    ],
)
def test_publish_refuses_a_bad_event_and_sends_nothing(
    settings: Settings, redis_client: redis.Redis, publisher: EventPublisher, build: Any, field: str
) -> None:
    """A bad field raises InvalidEvent naming it; no key is marked, no run is sent."""
    with pytest.raises(InvalidEvent) as raised:
        publisher.publish_many([EmailUpdated(2, 1, ROW, READ), build()])
    assert raised.value.field == field
    assert not markers(redis_client, settings)
    assert not redis_client.exists(KeySchema(settings.key_prefix).dirty_accounts(AGG))


def test_publish_refuses_what_is_not_an_event(
    settings: Settings, redis_client: redis.Redis, publisher: EventPublisher
) -> None:
    """A dict (say, a wire form passed by mistake) is refused before anything is sent."""
    with pytest.raises(InvalidEvent) as raised:
        publisher.publish({"type": "email.updated"})
    assert raised.value.field == "event"
    assert not markers(redis_client, settings)


def test_poison_dirty_member_is_dead_lettered_and_good_accounts_stay_fresh(
    settings: Settings, pg: Engine, redis_client: redis.Redis, publisher: EventPublisher
) -> None:
    """A token planted in the dirty set beside good accounts is dropped, logged and kept; the
    good accounts' events keep showing, run after run, and the token never comes back."""
    add_categories(pg, ["work"])
    add_emails(pg, [Row(2, 1, True, False, NOW), Row(3, 1, True, False, NOW)])
    keys = KeySchema(settings.key_prefix)
    with worker_process(settings) as worker:
        worker.wait_for("recompute.finished")
        redis_client.sadd(keys.dirty_accounts(AGG), "a-1", "x")
        for email_id, account_id in ((1, 2), (2, 3)):
            with pg.begin() as conn:
                conn.execute(update(Email).where(Email.id == email_id).values(is_unread=False))
            publisher.publish(EmailUpdated(account_id, email_id, ROW, READ))
            wait_until(
                lambda a=account_id: (
                    envelope(redis_client, settings, AGG, a)["data"]["unread_count"] == 0
                ),
                f"account {account_id}'s event to show",
            )
        wait_until(lambda: settled(redis_client, settings, pg, [(AGG, 2), (AGG, 3)]), "settled")
        rejected = worker.lines_with('"event.rejected"', 2)
    entries = [json.loads(raw) for raw in redis_client.lrange(keys.dead_letters, 0, -1)]
    assert sorted(json.loads(entry["payload"])["token"] for entry in entries) == ["a-1", "x"]
    assert {json.loads(line)["token"] for line in rejected} == {"a-1", "x"}
    assert not redis_client.exists(keys.dirty_accounts(AGG))
    assert '"recompute.failed"' not in "".join(worker.lines)


def test_a_message_naming_no_target_is_dead_lettered(
    settings: Settings, pg: Engine, redis_client: redis.Redis, publisher: EventPublisher
) -> None:
    """A recompute message with a bad scope or kinds is kept with the reason, never retried."""
    add_emails(pg, [Row(2, None, True, False, NOW)])
    sender = TaskSender(settings)
    keys = KeySchema(settings.key_prefix)
    with worker_process(settings) as worker:
        worker.wait_for("recompute.finished")
        for args in (["a-1", ["agg"]], ["all", ["nope"]], [7, ["agg"]], ["all", []]):
            sender.send(RECOMPUTE_TARGETS, args, settings.events_queue)
        worker.lines_with('"event.rejected"', 4)
        with pg.begin() as conn:
            conn.execute(update(Email).values(is_unread=False))
        publisher.publish(EmailUpdated(2, 1, EmailRow(None, True, False, NOW), READ))
        wait_until(lambda: settled(redis_client, settings, pg, [(AGG, 2)]), "the good event")
    sender.close()
    fields = [json.loads(raw)["field"] for raw in redis_client.lrange(keys.dead_letters, 0, -1)]
    assert sorted(fields) == ["kinds", "kinds", "scope", "scope"]


def test_a_failing_account_does_not_hold_back_the_others(
    settings: Settings, pg: Engine, pg_url: str, redis_client: redis.Redis
) -> None:
    """One account whose recompute fails: the others drained with it are written; it alone is
    marked dirty again, until it has failed MAX_ACCOUNT_FAILURES times and is dead-lettered."""
    add_categories(pg, ["work"])
    add_emails(pg, [Row(account, 1, True, False, NOW) for account in (1, 2, 3)])
    engine = make_engine(pg_url)

    @event.listens_for(engine, "before_cursor_execute")
    def _fail_for_account_2(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if "emails" in statement and 2 in _values(params):
            raise ValueError("account 2 is broken")

    keys = KeySchema(settings.key_prefix)
    store = RedisStore(redis_client, keys, settings.ttl_seconds)
    publisher = EventPublisher(settings)
    sent: list[Any] = []
    ctx = EventRun(engine, store, publisher.coalescer, metrics_for(settings), 50, sent.extend)
    recompute_every_scope(pg, store, 50)
    with pg.begin() as conn:
        conn.execute(update(Email).values(is_unread=False))
    results = []
    for attempt in range(MAX_ACCOUNT_FAILURES):
        publisher.coalescer.mark(
            [Target(AGG, f"a{n}") for n in ((1, 2, 3) if attempt == 0 else ())]
        )
        redis_client.delete(keys.cooldown(AGG, ACCOUNTS_SCOPE))
        results.append(recompute_targets(ctx, Run(ACCOUNTS_SCOPE, (AGG,), None), f"run-{attempt}"))
        dirty = redis_client.smembers(keys.dirty_accounts(AGG))
        assert dirty == (set() if attempt == MAX_ACCOUNT_FAILURES - 1 else {b"a2"})
    publisher.close()
    engine.dispose()
    assert sorted(scope for scope in results[0].stats if scope is not None) == [1, 3]
    for account, unread in ((1, 0), (2, 1), (3, 0)):
        assert envelope(redis_client, settings, AGG, account)["data"]["unread_count"] == unread
    (entry,) = [json.loads(raw) for raw in redis_client.lrange(keys.dead_letters, 0, -1)]
    assert entry["field"] == "account"
    assert "account 2 is broken" in entry["reason"]
    assert not redis_client.exists(keys.failures(AGG))


def _values(params: Any) -> list[Any]:
    if isinstance(params, dict):
        found: list[Any] = []
        for value in params.values():
            found.extend(value if isinstance(value, list | tuple) else [value])
        return found
    return list(params or ())
