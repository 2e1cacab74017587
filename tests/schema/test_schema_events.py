"""Events on mapped schemas: the host's own ORM classes, a real worker, brute-force truth.

The app's classes have attribute names of their own and no dashcache base; `track_mutations`
recognises them by their tables and publishes the same events, which a real worker turns into
values equal to a brute-force count of the rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import Engine
from sqlalchemy.orm import DeclarativeBase, sessionmaker

from dashcache import clock
from dashcache.config import Settings
from dashcache.errors import InvalidEvent
from dashcache.events import (
    CategoriesChanged,
    EmailCreated,
    EmailDeleted,
    EmailRow,
    EmailUpdated,
    EventPublisher,
    decode_event,
    encode_event,
    track_mutations,
)
from dashcache.events.ingest import ingest
from dashcache.events.types import Event
from dashcache.keys import Kind
from dashcache.schema.mapping import load_mapping
from tests.eventing import Settled, envelope, markers
from tests.helpers import NOW, captured_events, wait_until
from tests.mapped_schemas import (
    DAY,
    MULTI,
    SINGLE,
    VARIANTS,
    AppSchema,
    Email,
    Variant,
    _store,
    app_schema,
    host_classes,
    random_emails,
)
from tests.processes import worker_process

CATEGORIES = ["Work", "News", "Späße"]


@pytest.fixture(params=VARIANTS, ids=[v.label for v in VARIANTS])
def app(request: pytest.FixtureRequest, pg: Engine, tmp_path: Path) -> Iterator[AppSchema]:
    """A variant's schema holding 40 emails (3 accounts when multi-tenant)."""
    variant: Variant = request.param
    with app_schema(pg, variant, tmp_path, CATEGORIES) as schema:
        schema.add(random_emails(40, 1, None if variant.account is None else 3, 3))
        yield schema


def settled(client: redis.Redis, settings: Settings, app: AppSchema) -> Settled:
    """No event run pending or running, and every scope's values equal the brute-force count."""
    if found := markers(client, settings):
        return Settled(f"markers {found}")
    for scope in app.scopes():
        for kind, index in ((Kind.AGGREGATES, 0), (Kind.BREAKDOWN, 1)):
            stored = envelope(client, settings, kind, scope)
            if not stored:
                return Settled(f"{kind.value} of {scope} missing")
            truth = app.truth(scope, datetime.fromisoformat(stored["computed_at"]))[index]
            data = stored["data"] if kind is Kind.AGGREGATES else stored["data"][: len(truth)]
            if data != truth:
                return Settled(f"{kind.value} of {scope} holds {data}, not {truth}")
    return Settled()


def test_host_classes_publish_and_a_real_worker_converges(
    settings: Settings, app: AppSchema, redis_client: redis.Redis
) -> None:
    """Insert, flag flips, a category move, a delete and a rename by the app's own classes
    (expired by each commit) end with every value equal to the truth."""
    mapped = replace(settings, schema_file=app.mapping_file)
    v = app.variant
    message, label = host_classes(app)
    publisher = EventPublisher(mapped)
    batches: list[list[Event]] = []

    def publish(events: list[Event]) -> None:
        batches.append(events)
        publisher.publish_many(events)

    sessions = sessionmaker(app.engine)  # expire_on_commit: old values are read back
    track_mutations(sessions, publish, load_mapping(app.mapping_file))
    account = None if v.account is None else 2
    try:
        with worker_process(mapped) as worker:
            worker.wait_for("recompute.finished")
            wait_until(lambda: settled(redis_client, mapped, app), "the warm-up")
            new = Email(1000, account, 1, True, False, clock.now() - DAY)
            with sessions() as session:
                values = {"pk": new.id, "label": new.category, "received": new.created_at}
                values |= {"unread_raw": _store(True, v.unread_when)}
                if v.auto != v.category:
                    values |= {"auto_raw": _store(False, v.auto_when)}
                if account is not None:
                    values["owner"] = account
                session.add(message(**values))
                session.commit()
                app.rows[new.id] = new
                wait_until(lambda: settled(redis_client, mapped, app), "the insert")

                target = session.get_one(message, 5)
                session.commit()  # expired: the next change's old values are read back
                target.unread_raw = _store(not app.rows[5].unread, v.unread_when)
                target.label = 2 if app.rows[5].category != 2 else 3
                session.commit()
                app.rows[5].unread = not app.rows[5].unread
                app.rows[5].category = target.label
                session.delete(session.get_one(message, 6))
                session.commit()
                del app.rows[6]
                wait_until(lambda: settled(redis_client, mapped, app), "the update and delete")

                session.get_one(label, 3).title = "Archive"
                session.commit()
                app.names[3] = "Archive"
                wait_until(lambda: settled(redis_client, mapped, app), "the rename")
    finally:
        publisher.close()
    kinds = [type(event) for batch in batches for event in batch]
    assert kinds == [EmailCreated, EmailUpdated, EmailDeleted, CategoriesChanged]
    first = batches[0][0]
    assert isinstance(first, EmailCreated)
    assert (first.account_id, first.email_id) == (account, 1000)
    assert first.after == EmailRow(1, True, app.auto_labeled(new), new.created_at)
    updated = batches[1][0]
    assert isinstance(updated, EmailUpdated)
    assert updated.before.is_unread is not updated.after.is_unread  # read back, not guessed


def test_single_tenant_events_have_no_account(
    settings: Settings, pg: Engine, tmp_path: Path
) -> None:
    """Single-tenant events leave account_id out of the wire form; the multi-tenant wire form
    keeps it; each deployment refuses the other's events, and ingest dead-letters them."""
    row = EmailRow(1, True, False, NOW)
    single_event = EmailCreated(None, 7, row)
    wire = encode_event(single_event)
    assert "account_id" not in wire
    assert decode_event(wire) == single_event
    assert decode_event({**wire, "account_id": None}) == single_event
    assert encode_event(EmailCreated(3, 7, row))["account_id"] == 3
    with app_schema(pg, SINGLE, tmp_path, CATEGORIES) as single:
        publisher = EventPublisher(replace(settings, schema_file=single.mapping_file))
        try:
            with pytest.raises(InvalidEvent, match="single-tenant") as raised:
                publisher.publish(EmailCreated(3, 7, row))
            assert raised.value.field == "events[0].account_id"
            assert publisher.publish_many([single_event])  # a run of `all`
            assert ingest([encode_event(EmailCreated(3, 7, row))], publisher) == 0
        finally:
            publisher.close()
    multi = EventPublisher(settings)
    try:
        with pytest.raises(InvalidEvent, match="required"):
            multi.publish(single_event)
        assert ingest([wire], multi) == 0
    finally:
        multi.close()


def test_untracked_class_is_logged_not_raised(pg: Engine, tmp_path: Path) -> None:
    """A class of the emails table that leaves a mapped column unmapped is skipped, logged."""
    with app_schema(pg, MULTI, tmp_path, CATEGORIES) as schema:
        schema.add(random_emails(1, 1, 1, 1))

        class Base(DeclarativeBase):
            """The app's base."""

        partial: Any = type(
            "Partial",
            (Base,),
            {
                "__table__": schema.emails,
                "__mapper_args__": {"include_properties": ["message_pk", "owner_id"]},
            },
        )
        sessions = sessionmaker(pg)
        batches: list[list[Event]] = []
        track_mutations(sessions, batches.append, load_mapping(schema.mapping_file))
        with captured_events() as logs, sessions() as session:
            session.get_one(partial, 1).owner_id = 2
            session.commit()
        assert batches == []
        assert [entry["event"] for entry in logs] == ["event.untracked_class"]
