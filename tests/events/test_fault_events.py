"""Events that arrive twice, out of order, late, or never: the values still converge."""

from __future__ import annotations

import redis
from sqlalchemy import Engine, delete, update

from dashcache.config import Settings
from dashcache.dispatch import WARM_ALL, TaskSender
from dashcache.events import EmailCreated, EmailRow, EmailUpdated, EventPublisher
from dashcache.keys import Kind
from dashcache.models import Email
from dashcache.observe.verify import verify
from dashcache.reader import DashboardReader
from tests.eventing import settled
from tests.helpers import NOW, Row, add_categories, add_emails, wait_until
from tests.processes import worker_process

KEYS = [(kind, scope) for kind in Kind for scope in (1, None)]


def test_duplicate_reordered_delayed_and_dropped_events_converge(
    settings: Settings, pg: Engine, redis_client: redis.Redis
) -> None:
    """Events out of order, twice or late leave the truth; a lost one heals on the schedule."""
    add_categories(pg, ["work", "news"])
    add_emails(pg, [Row(1, 1, True, False, NOW), Row(1, 1, False, False, NOW)])
    unread = EmailRow(1, True, False, NOW)
    read, moved = EmailRow(1, False, False, NOW), EmailRow(2, False, False, NOW)
    flip, move = EmailUpdated(1, 1, unread, read), EmailUpdated(1, 1, read, moved)
    created = EmailCreated(1, 3, unread)
    publisher, sender = EventPublisher(settings), TaskSender(settings)
    try:
        with worker_process(settings):
            wait_until(lambda: settled(redis_client, settings, pg, KEYS), "the first warm")
            with pg.begin() as conn:
                conn.execute(update(Email).where(Email.id == 1).values(is_unread=False))
            with pg.begin() as conn:
                conn.execute(update(Email).where(Email.id == 1).values(category_id=2))
            add_emails(pg, [Row(1, 1, True, False, NOW)])
            publisher.publish_many([created, move, created, flip, move])
            wait_until(lambda: settled(redis_client, settings, pg, KEYS), "replayed events")
            publisher.publish_many([flip])
            wait_until(lambda: settled(redis_client, settings, pg, KEYS), "a late event")
            with pg.begin() as conn:
                conn.execute(delete(Email).where(Email.id == 2))
            sender.send(WARM_ALL, [], settings.schedule_queue)
            wait_until(lambda: settled(redis_client, settings, pg, KEYS), "the scheduled run")
    finally:
        publisher.close()
        sender.close()
    reader = DashboardReader.from_settings(settings)
    try:
        report = verify(reader.engine, reader.store, settings.max_breakdown)
        value = reader.get_category_breakdown(account_id=1)
    finally:
        reader.close()
    assert (report.ok, report.checked) == (True, 4)
    assert value.data == {"news": 1, "work": 1}
