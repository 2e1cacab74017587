"""Several events of one email in one transaction (one txid), published by hand: netted into
that email's one change whatever their order, or refused before anything is applied; a later
batch's other change of that (txid, email) is refused as a conflict, and its values recomputed.
Real PostgreSQL and Redis; the netting itself is also checked as a pure property."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import sessionmaker

from dashcache.config import Settings
from dashcache.errors import EventConflict, InvalidEvent
from dashcache.events import (
    EmailCreated,
    EmailDeleted,
    EmailRow,
    EmailUpdated,
    Event,
    EventPublisher,
    encode_event,
)
from dashcache.events.ingest import ingest
from dashcache.events.netting import EmailEvent, net_change
from dashcache.keys import KeySchema, Kind
from dashcache.models import Email
from dashcache.recompute import recompute_every_scope
from dashcache.snapshots import current_txid
from dashcache.store import RedisStore
from tests.eventing import envelope, markers
from tests.events.test_deltas import assert_exact, email, warm
from tests.helpers import add_categories

T = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@pytest.fixture
def publisher(settings: Settings) -> Iterator[EventPublisher]:
    """An event publisher for the test's settings."""
    made = EventPublisher(settings)
    yield made
    made.close()


@pytest.fixture
def store(settings: Settings, redis_client: redis.Redis, pg: Engine) -> RedisStore:
    """Two categories, four emails in two accounts, every scope warmed."""
    made = RedisStore(redis_client, KeySchema(settings.key_prefix), settings.ttl_seconds)
    add_categories(pg, ["work", "news"])
    warm(pg, made, settings)
    return made


def created_then_read(pg: Engine) -> tuple[int, EmailCreated, EmailUpdated]:
    """Raw SQL, one transaction: an unread email inserted, then marked read. Returns its txid and
    the two events a producer publishes by hand for it."""
    with sessionmaker(pg, expire_on_commit=False).begin() as session:
        added = email(1, 2, 0.5)
        session.add(added)
        session.flush()
        session.execute(update(Email).where(Email.id == added.id).values(is_unread=False))
        txid = current_txid(session)
        assert txid is not None
    row = EmailRow(2, True, False, added.created_at)
    created = EmailCreated(1, added.id, row, txid=txid)
    read = EmailUpdated(1, added.id, row, replace(row, is_unread=False), txid=txid)
    return txid, created, read


@pytest.mark.parametrize("order", ["created first", "updated first"])
def test_created_then_marked_read_in_one_transaction_is_counted_exactly(
    settings: Settings,
    pg: Engine,
    redis_client: redis.Redis,
    publisher: EventPublisher,
    store: RedisStore,
    order: str,
) -> None:
    """The two events of one txid, in either order, are one creation of a read email: every
    scope equals a recount, no recompute was asked for."""
    _, created, read = created_then_read(pg)
    batch: list[Event] = [created, read] if order == "created first" else [read, created]
    unread_before = envelope(redis_client, settings, Kind.AGGREGATES, 1)["data"]["unread_count"]
    assert publisher.publish_many(batch) == []
    assert_exact(redis_client, settings, pg)
    aggregates = envelope(redis_client, settings, Kind.AGGREGATES, 1)["data"]
    assert aggregates["unread_count"] == unread_before
    assert markers(redis_client, settings) == []


def test_the_wire_form_nets_one_transactions_events_too(
    settings: Settings,
    pg: Engine,
    redis_client: redis.Redis,
    publisher: EventPublisher,
    store: RedisStore,
) -> None:
    """The same two events as JSON (updated first) through ingest: accepted, counted exactly."""
    _, created, read = created_then_read(pg)
    assert ingest([encode_event(read), encode_event(created)], publisher) == 2
    assert_exact(redis_client, settings, pg)
    assert redis_client.llen(KeySchema(settings.key_prefix).dead_letters) == 0


def test_an_email_moved_to_another_account_in_one_transaction_is_counted_exactly(
    settings: Settings,
    pg: Engine,
    redis_client: redis.Redis,
    publisher: EventPublisher,
    store: RedisStore,
) -> None:
    """A delete from account 1 and a create in account 2 with one txid: each account's scope
    and `all` take their part of the move."""
    with sessionmaker(pg, expire_on_commit=False).begin() as session:
        moved = session.scalars(select(Email).where(Email.account_id == 1)).first()
        assert moved is not None
        old = EmailRow(moved.category_id, moved.is_unread, False, moved.created_at)
        session.execute(update(Email).where(Email.id == moved.id).values(account_id=2))
        session.execute(update(Email).where(Email.id == moved.id).values(category_id=None))
        txid = current_txid(session)
    new = replace(old, category_id=None)
    publisher.publish_many(
        [
            EmailCreated(2, moved.id, new, txid=txid),
            EmailDeleted(1, moved.id, old, txid=txid),
        ]
    )
    assert_exact(redis_client, settings, pg)
    assert markers(redis_client, settings) == []


def test_events_that_do_not_chain_are_refused_before_anything_is_applied(
    settings: Settings,
    pg: Engine,
    redis_client: redis.Redis,
    publisher: EventPublisher,
    store: RedisStore,
    logs: list[dict[str, Any]],
) -> None:
    """An update whose before is not the created row: InvalidEvent naming the events and the
    rule, a log line, and no value, log entry or dead letter changed by the batch (the wire form
    dead-letters it with the reason)."""
    _, created, read = created_then_read(pg)
    wrong = replace(read, before=replace(read.before, category_id=1))
    keys = KeySchema(settings.key_prefix)
    stored = {kind: envelope(redis_client, settings, kind, None) for kind in Kind}
    other = EmailCreated(2, 999, created.after, txid=created.txid)
    with pytest.raises(InvalidEvent) as raised:
        publisher.publish_many([other, created, wrong])
    message = str(raised.value)
    assert raised.value.field == "events[1]"
    assert message.startswith("events[1], events[2] (EmailCreated, EmailUpdated) of email ")
    assert "must chain (each before is another's after" in message
    assert [e["event"] for e in logs if e["event"].startswith("event.")] == ["event.not_netted"]
    assert {kind: envelope(redis_client, settings, kind, None) for kind in Kind} == stored
    assert not redis_client.hexists(keys.deltas(None), f"{created.txid}:999")
    assert ingest([encode_event(created), encode_event(wrong)], publisher) == 0
    assert redis_client.llen(keys.dead_letters) == 1


def test_a_later_batchs_other_change_of_the_email_is_a_conflict_recomputed(
    settings: Settings,
    pg: Engine,
    redis_client: redis.Redis,
    publisher: EventPublisher,
    store: RedisStore,
    logs: list[dict[str, Any]],
) -> None:
    """The creation published alone, then the update of the same txid in a second batch: the
    second raises EventConflict (logged) and asks for its scopes' recompute, which then counts
    the truth and no drift; the first batch sent again is a duplicate."""
    _, created, read = created_then_read(pg)
    publisher.publish_many([created])
    with pytest.raises(EventConflict, match=f"{created.txid}:{created.email_id}"):
        publisher.publish_many([read])
    conflicts = [e for e in logs if e["event"] == "event.conflict"]
    assert [e["identity"] for e in conflicts] == [f"{created.txid}:{created.email_id}"]
    assert markers(redis_client, settings) != []  # the recompute of its scopes is pending
    assert publisher.publish_many([created]) == []  # a duplicate: nothing new
    result = recompute_every_scope(pg, store, settings.max_breakdown)
    assert result.drift == ()
    assert_exact(redis_client, settings, pg)


def test_a_background_batch_recomputes_what_it_cannot_net(
    settings: Settings,
    pg: Engine,
    redis_client: redis.Redis,
    publisher: EventPublisher,
    store: RedisStore,
    logs: list[dict[str, Any]],
) -> None:
    """`publish` of events that do not chain: whether the background thread sends them in one
    batch (refused: not netted) or in two (the second conflicts), it logs the refusal, raises
    nothing, and asks for a recompute of the email's scopes, which counts the truth."""
    _, created, read = created_then_read(pg)
    wrong = replace(read, before=replace(read.before, category_id=1))
    for item in (created, wrong):
        publisher.publish(item)
    assert publisher.flush(30)
    refusals = [e["event"] for e in logs if e["event"].startswith("event.")]
    assert refusals in (["event.not_netted"], ["event.conflict"]), refusals
    assert markers(redis_client, settings) != []
    recompute_every_scope(pg, store, settings.max_breakdown)
    assert_exact(redis_client, settings, pg)


ROWS = [EmailRow(c, u, a, T) for c in (None, 1, 2) for u in (False, True) for a in (False, True)]


@st.composite
def transactions(draw: st.DrawFn) -> tuple[list[Any], list[EmailEvent]]:
    """One email's places (None: no row) through a transaction, and its events shuffled."""
    length = draw(st.integers(2, 7))
    places: list[Any] = [draw(st.sampled_from([None, *ROWS])) for _ in range(length)]
    events: list[EmailEvent] = []
    for before, after in itertools.pairwise(places):
        if before is None and after is None:
            continue
        if before is None:
            events.append(EmailCreated(1, 5, after, txid=9))
        elif after is None:
            events.append(EmailDeleted(1, 5, before, txid=9))
        else:
            events.append(EmailUpdated(1, 5, before, after, txid=9))
    return places, draw(st.permutations(events))


@given(transactions())
def test_net_change_is_the_first_before_and_the_last_after_in_any_order(
    drawn: tuple[list[Any], list[EmailEvent]],
) -> None:
    """Whatever order a transaction's events come in, their net change moves the same counts
    as going from the first place to the last."""
    places, events = drawn
    if not events:
        return
    net = net_change(9, 5, list(enumerate(events)))
    first, last = places[0], places[-1]
    if net.before is None and net.after is None and first != last:
        pytest.fail(f"netted to nothing, but {first} -> {last}")
    if (net.before, net.after) != (None, None):
        assert net.before == (None if first is None else (1, first))
        assert net.after == (None if last is None else (1, last))


@pytest.mark.parametrize(
    ("events", "problem"),
    [
        (
            [EmailCreated(1, 5, ROWS[0], txid=9), EmailCreated(1, 5, ROWS[1], txid=9)],
            "start from the same row (or from none)",
        ),
        (
            [EmailCreated(1, 5, ROWS[0], txid=9), EmailUpdated(1, 5, ROWS[1], ROWS[2], txid=9)],
            "one's before (its account and row) is no other's after",
        ),
        (
            [EmailUpdated(1, 5, ROWS[0], ROWS[1], txid=9), EmailDeleted(2, 5, ROWS[1], txid=9)],
            "one's before (its account and row) is no other's after",
        ),
    ],
)
def test_events_that_are_not_one_transactions_changes_are_refused(
    events: list[EmailEvent], problem: str
) -> None:
    """Two creations, a before nobody left, another account's row: refused, saying why."""
    with pytest.raises(InvalidEvent, match=re.escape(problem)) as raised:
        net_change(9, 5, list(enumerate(events)))
    assert raised.value.field == "events[0]"
