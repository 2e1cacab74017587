"""A burst spread over many accounts, with a real worker: few grouped runs, every value right."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis
from sqlalchemy import Engine, insert

from dashcache.config import Settings
from dashcache.events import EmailCreated, EmailRow, EventPublisher
from dashcache.keys import ACCOUNTS_SCOPE, Kind
from dashcache.models import Email
from tests.eventing import envelope, run_target, settled, start_gaps
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
    """3,000 events over 200 accounts end right, in runs of the `accounts` target grouped by
    the throttle: no two of them start less than a debounce apart (their own start times, on
    the Redis clock), and together they recompute every account."""
    add_categories(pg, ["work"])
    add_emails(pg, [Row(1, 1, True, False, NOW)])
    row = EmailRow(1, True, True, NOW)
    with worker_process(settings) as worker:
        worker.wait_for("recompute.finished")
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
        keys = [(kind, a) for kind in Kind for a in range(1, ACCOUNTS + 1)]
        wait_until(lambda: settled(redis_client, settings, pg, keys), "the burst to settle", 120)
    # After stop: every run's finished line is in.
    records = [json.loads(line) for line in worker.lines if '"recompute.finished"' in line]
    account_runs = [
        r
        for r in records
        if r.get("trigger") == "event"
        and r["outcome"] != "skipped"
        and run_target(r["scope"]) == ACCOUNTS_SCOPE
    ]
    gaps = start_gaps(worker.lines)
    assert (
        envelope(redis_client, settings, Kind.AGGREGATES, 1)["data"]["total_emails"] == 19
    )  # 1 + 3 per chunk
    assert {(ACCOUNTS_SCOPE, kind.value) for kind in Kind} <= gaps.keys()
    assert all(gap >= settings.event_debounce_ms for each in gaps.values() for gap in each), gaps
    assert sum(r["scopes"] for r in account_runs) >= ACCOUNTS
    print(f"burst: {len(account_runs)} account runs for {ACCOUNTS} accounts")
