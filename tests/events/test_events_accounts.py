"""A burst spread over many accounts, with a real worker: few grouped runs, every value right."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import redis
from sqlalchemy import Engine, insert

from shared.config import Settings
from shared.events import EmailCreated, EmailRow, EventPublisher
from shared.keys import Kind
from shared.models import Email
from tests.eventing import envelope, settled
from tests.helpers import NOW, Row, add_categories, add_emails, wait_until
from tests.processes import worker_process

ACCOUNTS = 200
EVENTS = 3000


@pytest.fixture
def publisher(settings: Settings) -> Iterator[EventPublisher]:
    """An event publisher for the test's settings."""
    made = EventPublisher(settings)
    yield made
    made.close()


def test_burst_over_many_accounts_costs_few_grouped_runs(
    settings: Settings, pg: Engine, redis_client: redis.Redis, publisher: EventPublisher
) -> None:
    """3,000 events over 200 accounts end right, in far fewer account runs than accounts."""
    add_categories(pg, ["work"])
    add_emails(pg, [Row(1, 1, True, False, NOW)])
    row = EmailRow(1, True, True, NOW)
    with worker_process(settings) as worker:
        worker.wait_for("recompute.finished")
        started = time.monotonic()
        for chunk in range(EVENTS // 500):
            batch = [
                {
                    "account_id": n % ACCOUNTS + 1,
                    "category_id": 1,
                    "is_unread": True,
                    "is_auto_labeled": True,
                    "message_id": f"<m{chunk}-{n}@t>",
                    "created_at": NOW,
                    "updated_at": NOW,
                }
                for n in range(500)
            ]
            with pg.begin() as conn:
                rows = conn.execute(insert(Email).returning(Email.id, Email.account_id), batch)
                created = rows.all()
            for email_id, account_id in created:
                publisher.publish(EmailCreated(account_id, email_id, row))
        duration = time.monotonic() - started
        keys = [(kind, a) for kind in Kind for a in range(1, ACCOUNTS + 1)]
        wait_until(lambda: settled(redis_client, settings, pg, keys), "the burst to settle", 60)
        records = [json.loads(line) for line in worker.lines if '"recompute.finished"' in line]
    account_runs = [
        r
        for r in records
        if r.get("trigger") == "event"
        and r["outcome"] != "skipped"
        and r["scope"] not in ("all", "every")
    ]
    debounce, max_wait = settings.event_debounce_ms / 1000, settings.event_max_wait_ms / 1000
    bound = 2 * duration / debounce + duration / max_wait + 6
    assert (
        envelope(redis_client, settings, Kind.AGGREGATES, 1)["data"]["total_emails"] == 19
    )  # 1 + 3 per chunk
    assert len(account_runs) <= bound, (len(account_runs), duration)
    assert sum(r["scopes"] for r in account_runs) >= ACCOUNTS
    print(f"burst: {duration:.2f} s, {len(account_runs)} account runs, bound {bound:.1f}")
