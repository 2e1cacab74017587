"""Drift behind an unpublished change is counted: a recompute caused by an email event without
a txid takes out the change that event's own rows explain, and counts the rest as drift."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import sessionmaker

from dashcache import clock
from dashcache.config import Settings
from dashcache.events import EmailCreated, EmailRow, EmailUpdated, EventPublisher
from dashcache.keys import KeySchema, Kind, Scope
from dashcache.models import Email
from dashcache.recompute import compute_unwritten, recompute_scope, write_result
from dashcache.store import RedisStore
from tests.eventing import envelope, truth
from tests.events.test_drift_triggers import drift_by_trigger
from tests.helpers import add_categories, wait_until
from tests.processes import worker_process

SCOPES: tuple[Scope, ...] = (1, None)


@pytest.fixture
def store(settings: Settings, pg: Engine, redis_client: redis.Redis) -> RedisStore:
    """Six unread emails in two accounts and two categories, both scopes of account 1 and
    `all` warmed."""
    add_categories(pg, ["work", "news"])
    now = clock.now()
    with sessionmaker(pg).begin() as session:
        session.add_all(
            [
                Email(
                    message_id=f"<{n}@unpublished>",
                    account_id=1 + n % 2,
                    category_id=1,
                    is_unread=True,
                    is_auto_labeled=False,
                    created_at=now - timedelta(days=n),
                    updated_at=now,
                )
                for n in range(6)
            ]
        )
    made = RedisStore(redis_client, KeySchema(settings.key_prefix), settings.ttl_seconds)
    for scope in SCOPES:
        recompute_scope(pg, made, scope, settings.max_breakdown)
    return made


@pytest.fixture
def publisher(settings: Settings) -> Iterator[EventPublisher]:
    """An event publisher for the test's settings (its runs wait on the broker: the tests
    recompute themselves unless a worker runs)."""
    made = EventPublisher(settings)
    yield made
    made.close()


def account_emails(pg: Engine, account_id: int) -> list[int]:
    with pg.connect() as conn:
        ids = conn.execute(select(Email.id).where(Email.account_id == account_id)).scalars()
        return sorted(ids)


def row_of(pg: Engine, email_id: int) -> EmailRow:
    with pg.connect() as conn:
        got = conn.execute(select(Email).where(Email.id == email_id)).one()
    return EmailRow(got.category_id, got.is_unread, got.is_auto_labeled, got.created_at)


def change(pg: Engine, email_id: int, **values: object) -> tuple[EmailRow, EmailRow]:
    """Raw SQL: one email's columns set; its rows before and after."""
    before = row_of(pg, email_id)
    with pg.begin() as conn:
        conn.execute(update(Email).where(Email.id == email_id).values(**values))
    return before, row_of(pg, email_id)


def published(pg: Engine, publisher: EventPublisher, email_id: int, **values: object) -> None:
    """A change made and published as an event without txid."""
    before, after = change(pg, email_id, **values)
    publisher.publish_many([EmailUpdated(1, email_id, before=before, after=after)])


def recompute(pg: Engine, store: RedisStore, settings: Settings) -> dict[str, tuple[str, ...]]:
    """Both scopes recomputed (as the event's run would): {key: drifted fields}."""
    found = {}
    for scope in SCOPES:
        result = recompute_scope(pg, store, scope, settings.max_breakdown)
        assert result.outcome == "written"
        found.update({d.key: d.fields for d in result.drift})
    return found


def marks(client: redis.Redis, store: RedisStore) -> list[bytes]:
    """The expectation and unexplained marks left in the scopes' delta logs."""
    return sorted(
        field
        for scope in SCOPES
        for field in client.hkeys(store.keys.deltas(scope))
        if field[:3] in (b"~e:", b"~a:", b"~u:")
    )


def assert_exact(client: redis.Redis, settings: Settings, pg: Engine) -> None:
    for scope in SCOPES:
        for kind in Kind:
            stored = envelope(client, settings, kind, scope)
            expected = truth(pg, kind, scope, stored["computed_at"], settings.max_breakdown)
            assert stored["data"] == expected, (kind, scope)


def test_an_event_whose_rows_explain_the_change_counts_no_drift(
    settings: Settings,
    pg: Engine,
    redis_client: redis.Redis,
    store: RedisStore,
    publisher: EventPublisher,
) -> None:
    """Read, re-labeled, re-filed and created, all published without txid: no drift, and the
    recompute clears the marks."""
    first, second = account_emails(pg, 1)[:2]
    published(pg, publisher, first, is_unread=False, is_auto_labeled=True)
    published(pg, publisher, second, category_id=2)
    with sessionmaker(pg).begin() as session:
        new = Email(
            message_id="<new@unpublished>",
            account_id=1,
            category_id=2,
            is_unread=True,
            is_auto_labeled=False,
            created_at=clock.now(),
            updated_at=clock.now(),
        )
        session.add(new)
        session.flush()
        new_id = new.id
    publisher.publish_many([EmailCreated(1, new_id, row_of(pg, new_id))])
    assert marks(redis_client, store), "the events to mark their values"
    assert recompute(pg, store, settings) == {}
    assert marks(redis_client, store) == []
    assert_exact(redis_client, settings, pg)


def test_a_raw_change_beside_a_published_one_is_exactly_the_drift(
    settings: Settings,
    pg: Engine,
    redis_client: redis.Redis,
    store: RedisStore,
    publisher: EventPublisher,
) -> None:
    """An email read and published without txid, beside raw SQL nobody published in the same
    scope: another email read (same field, same way), one re-filed, one marked unread again
    after the event (the totals then match the stored ones, yet it is drift). Exactly the raw
    fields are counted, in the account's scope and in `all`."""
    first, second, third = account_emails(pg, 1)
    published(pg, publisher, first, is_unread=False)
    change(pg, second, is_unread=False, category_id=2)
    assert recompute(pg, store, settings) == {
        store.keys.value(Kind.AGGREGATES, scope): ("unread_count",) for scope in SCOPES
    } | {store.keys.value(Kind.BREAKDOWN, scope): ("news", "work") for scope in SCOPES}
    published(pg, publisher, third, is_unread=False)
    change(pg, second, is_unread=True)
    assert recompute(pg, store, settings) == {
        store.keys.value(Kind.AGGREGATES, scope): ("unread_count",) for scope in SCOPES
    }
    assert marks(redis_client, store) == []
    assert_exact(redis_client, settings, pg)


def test_several_events_before_one_recompute_add_up(
    settings: Settings,
    pg: Engine,
    redis_client: redis.Redis,
    store: RedisStore,
    publisher: EventPublisher,
) -> None:
    """Three events without txid, in separate batches, before one recompute: their changes add
    up, none is drift; with one raw change among them, only that is."""
    emails = account_emails(pg, 1)
    for email_id in emails:
        published(pg, publisher, email_id, is_unread=False)
    assert recompute(pg, store, settings) == {}
    for email_id in emails[:2]:
        published(pg, publisher, email_id, is_unread=True, category_id=2)
    change(pg, emails[2], is_auto_labeled=True)
    assert recompute(pg, store, settings) == {
        store.keys.value(Kind.AGGREGATES, scope): ("auto_labeled",) for scope in SCOPES
    }
    assert_exact(redis_client, settings, pg)


def test_a_recompute_older_than_the_event_keeps_its_expectation(
    settings: Settings,
    pg: Engine,
    redis_client: redis.Redis,
    store: RedisStore,
    publisher: EventPublisher,
) -> None:
    """A recompute whose ticket predates the event (its snapshot saw the change) counts no
    drift and leaves the expectation; the next recompute, whose stored value then already holds
    the change, counts none either and clears it; a raw change after that is drift again."""
    first, second = account_emails(pg, 1)[:2]
    early = store.take_ticket()
    published(pg, publisher, first, is_unread=False)
    result = write_result(store, compute_unwritten(pg, 1, settings.max_breakdown, early))
    assert (result.outcome, result.drift) == ("written", ())
    assert b"~a:agg:" + str(early).encode() in marks(redis_client, store)
    assert recompute(pg, store, settings) == {}
    assert marks(redis_client, store) == []
    change(pg, second, is_unread=False)
    assert set(recompute(pg, store, settings).values()) == {("unread_count",)}


def test_an_event_run_counts_the_drift_behind_its_event(
    settings: Settings,
    pg: Engine,
    store: RedisStore,
    publisher: EventPublisher,
) -> None:
    """With a real worker: after its first pass, raw SQL reads one email of account 1 and an
    event without txid publishes another one read; the event's runs count exactly the raw one
    (`event`), and the values are right."""
    first, second = account_emails(pg, 1)[:2]
    with worker_process(settings) as worker:
        worker.wait_for("recompute.finished")
        change(pg, second, is_unread=False)
        published(pg, publisher, first, is_unread=False)
        wait_until(
            lambda: (
                (envelope(store.client, settings, Kind.AGGREGATES, None).get("data") or {}).get(
                    "unread_count"
                )
                == 4
            ),
            "the event run to write the all-accounts aggregates",
            60,
        )
        worker.lines_with("recompute.drift", 2)
    drifted = [json.loads(line) for line in worker.lines if "recompute.drift" in line]
    assert sorted((e["key"], e["trigger"], tuple(e["fields"])) for e in drifted) == sorted(
        (store.keys.value(Kind.AGGREGATES, scope), "event", ("unread_count",)) for scope in SCOPES
    )
    assert drift_by_trigger(settings) == {"event": {"aggregates": 2}}
