"""The current week is open at its end: emails created, deleted and re-dated after a value's
`computed_at` (around both window starts, and in the future) move every number by deltas so that
it equals a fresh count as of now, with no pass in between."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import redis
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from dashcache.config import Settings
from dashcache.events import EventPublisher
from dashcache.keys import KeySchema, Kind, Scope
from dashcache.models import Email
from dashcache.recompute import recompute_every_scope, snapshot, to_data
from dashcache.stats import compute_scope
from dashcache.store import RedisStore
from tests.eventing import envelope, markers, tracked_sessions
from tests.helpers import add_categories

SCOPES: tuple[Scope, ...] = (1, 2, None)
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


@pytest.fixture
def publisher(settings: Settings) -> Iterator[EventPublisher]:
    """An event publisher for the test's settings."""
    made = EventPublisher(settings)
    yield made
    made.close()


def db_now(engine: Engine) -> datetime:
    """The database's clock (the one `created_at` defaults and recounts are read against)."""
    with engine.connect() as connection:
        return connection.execute(select(func.now())).scalar_one()


def email(account_id: int, category_id: int | None, created: datetime, tag: str) -> Email:
    return Email(
        message_id=f"<{account_id}-{tag}@open-week>",
        account_id=account_id,
        category_id=category_id,
        is_unread=True,
        is_auto_labeled=False,
        created_at=created,
        updated_at=created,
    )


def fresh(engine: Engine, kind: Kind, scope: Scope, max_breakdown: int) -> object:
    """A recount of one value as of the database's now."""
    with snapshot(engine) as session:
        stats = compute_scope(session, scope, db_now(engine), max_breakdown)
    return to_data(stats, kind)


def test_every_number_equals_a_fresh_count_without_a_pass(
    settings: Settings, pg: Engine, redis_client: redis.Redis, publisher: EventPublisher
) -> None:
    """Creates (now, beside both window starts, in the future), deletes and re-dates across
    every boundary leave every value of every scope equal to a recount as of now."""
    add_categories(pg, ["work", "news"])
    now = db_now(pg)
    with sessionmaker(pg).begin() as session:
        session.add_all(
            [
                email(1, 1, now - 2 * DAY, "w1"),
                email(1, 2, now - 10 * DAY, "p1"),
                email(2, 1, now - 3 * DAY, "w2"),
                email(2, None, now - 20 * DAY, "o2"),
            ]
        )
    store = RedisStore(redis_client, KeySchema(settings.key_prefix), settings.ttl_seconds)
    recompute_every_scope(pg, store, settings.max_breakdown)
    generations = [
        envelope(redis_client, settings, k, s)["generation"] for k in Kind for s in SCOPES
    ]
    sessions = tracked_sessions(pg, publisher, deltas=True)
    week, previous = now - 7 * DAY, now - 14 * DAY
    changes: list[Callable[[Session], Any]] = [
        lambda s: s.add(email(1, 1, db_now(pg), "now1")),
        lambda s: s.add(email(2, 2, db_now(pg), "now2")),
        lambda s: s.add(email(1, 1, week + HOUR, "in-week")),
        lambda s: s.add(email(1, 2, week - HOUR, "in-previous")),
        lambda s: s.add(email(2, 1, previous + HOUR, "previous-start")),
        lambda s: s.add(email(2, 2, previous - HOUR, "before-previous")),
        lambda s: s.add(email(1, None, now + 3 * DAY, "future")),
        lambda s: s.add(email(2, 1, now + 400 * DAY, "far-future")),
        lambda s: setattr(s.get_one(Email, 1), "created_at", now + DAY),
        lambda s: setattr(s.get_one(Email, 2), "created_at", week + HOUR),
        lambda s: setattr(s.get_one(Email, 3), "created_at", previous - HOUR),
        lambda s: setattr(s.get_one(Email, 4), "created_at", previous + HOUR),
        lambda s: setattr(s.get_one(Email, 5), "created_at", week - HOUR),
        lambda s: setattr(s.get_one(Email, 11), "created_at", now - HOUR),
        lambda s: s.delete(s.get_one(Email, 6)),
        lambda s: s.delete(s.get_one(Email, 12)),
        lambda s: s.add(email(1, 2, db_now(pg), "now3")),
    ]
    for change in changes:
        with sessions.begin() as session:
            change(session)
    publisher.flush()
    assert markers(redis_client, settings) == []
    for scope in SCOPES:
        for kind in Kind:
            stored = envelope(redis_client, settings, kind, scope)
            assert stored["data"] == fresh(pg, kind, scope, settings.max_breakdown), (kind, scope)
    after = [envelope(redis_client, settings, k, s)["generation"] for k in Kind for s in SCOPES]
    assert after == generations  # deltas only: no value was recomputed
    totals = envelope(redis_client, settings, Kind.AGGREGATES, None)["data"]
    assert totals["weekly_growth"]["emails"] > 0
    assert totals["weekly_growth"]["previous"] > 0
