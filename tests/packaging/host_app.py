"""An email app's process with packages of its own named `shared`, `worker` and `bench`.

Run as a script from the host's folder (that folder first on `sys.path`, as a host app has it):
it imports its own packages, reads a dashboard through `dashcache.reader` and
`dashcache.async_reader`, publishes one email created in its own transaction through
`dashcache.events`, reads again, and prints one JSON line of what it saw. Settings from the
environment.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

from sqlalchemy import create_engine, text

import bench
import shared
import shared.config
import worker
from dashcache.async_reader import AsyncDashboardReader
from dashcache.config import Settings
from dashcache.events import EmailCreated, EmailRow, publish_many
from dashcache.reader import DashboardReader


async def read_async() -> int:
    async with AsyncDashboardReader.from_env() as reader:
        value = await reader.get_aggregates(account_id=1)
        return int(value.data["total_emails"])


def create_email(database_url: str) -> EmailCreated:
    """Insert an email in a transaction of the host's own; the event carries its txid."""
    created_at = datetime.now(UTC)
    engine = create_engine(database_url)
    with engine.begin() as conn:
        txid = int(conn.scalar(text("SELECT pg_current_xact_id()::text::bigint")))
        email_id = conn.scalar(
            text(
                "INSERT INTO emails (message_id, account_id, category_id, is_unread,"
                " is_auto_labeled, created_at, updated_at)"
                " VALUES ('<host@test>', 1, NULL, true, false, :at, :at) RETURNING id"
            ),
            {"at": created_at},
        )
    engine.dispose()
    row = EmailRow(category_id=None, is_unread=True, is_auto_labeled=False, created_at=created_at)
    return EmailCreated(1, int(email_id), after=row, txid=txid)


def main() -> None:
    settings = Settings.from_env()
    reader = DashboardReader.from_env()
    before = reader.get_aggregates(account_id=1)
    async_total = asyncio.run(read_async())
    publish_many([create_email(settings.database_url)])
    after = reader.get_aggregates(account_id=1)
    print(
        json.dumps(
            {
                "own": [shared.__file__, shared.config.__file__, worker.__file__, bench.__file__],
                "own_markers": [shared.MARK, shared.config.MARK, worker.MARK, bench.MARK],
                "before": [before.data["total_emails"], before.source],
                "async_total": async_total,
                "after": [after.data["total_emails"], after.source],
            }
        )
    )


if __name__ == "__main__":
    main()
