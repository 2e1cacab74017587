"""Test helpers: insert emails and categories, store aged values, count queries, poll observable
state (Redis subscribers, PostgreSQL lock waiters), capture logged events."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from sqlalchemy import Engine, event, insert, text

from dashcache import clock
from dashcache.keys import Kind, Scope
from dashcache.logging import FIELDS_ATTRIBUTE
from dashcache.models import Category, Email
from dashcache.store import Envelope, RedisStore, Write

NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)
_ids = itertools.count(1)


@dataclass(frozen=True)
class Row:
    """The counted fields of one test email."""

    account_id: int
    category_id: int | None
    is_unread: bool
    is_auto_labeled: bool
    created_at: datetime


def add_categories(engine: Engine, names: Iterable[str]) -> dict[int, str]:
    """Insert categories with ids 1..n; return id -> name."""
    categories = dict(enumerate(names, start=1))
    if categories:
        with engine.begin() as conn:
            conn.execute(insert(Category), [{"id": i, "name": n} for i, n in categories.items()])
    return categories


def add_emails(engine: Engine, rows: Iterable[Row]) -> None:
    """Insert one email per row, with unique message ids."""
    values = [
        {
            "message_id": f"<{next(_ids)}@test>",
            "account_id": r.account_id,
            "category_id": r.category_id,
            "is_unread": r.is_unread,
            "is_auto_labeled": r.is_auto_labeled,
            "created_at": r.created_at,
            "updated_at": r.created_at,
        }
        for r in rows
    ]
    if values:
        with engine.begin() as conn:
            conn.execute(insert(Email), values)


def put_value(store: RedisStore, kind: Kind, account_id: Scope, data: object, age: float) -> None:
    """Store `data` through the fence as if it had been computed `age` seconds ago."""
    computed_at = clock.now() - timedelta(seconds=age)
    envelope = Envelope(data, computed_at, store.take_ticket())
    assert store.write([Write(kind, account_id, envelope)]) == [True]


def count_queries(engine: Engine, table: str = "emails") -> list[str]:
    """Record, from now on, every statement `engine` runs that reads `table` (a counting wrapper
    at the database layer, independent of the reader's own bookkeeping): one per computation,
    whose read of the emails crossing a window start (shared/crossings.py, in the same snapshot)
    is part of it and not recorded apart."""
    seen: list[str] = []

    def before(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if f"FROM {table}" in statement and "EXTRACT(epoch FROM" not in statement:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    return seen


WAIT_SECONDS = 60.0
"""How long a test waits for state another thread or process brings about: far more than it takes
on a loaded machine, as a wait ends as soon as the state is there."""
POLL_SECONDS = 0.05


def wait_until(
    check: Callable[[], object],
    what: str,
    timeout: float = WAIT_SECONDS,
    seen: Callable[[], object] | None = None,
    poll: float = POLL_SECONDS,
) -> Any:
    """Poll `check` until it returns something true, and return that; after `timeout` s fail
    naming `what` and the last thing seen (`seen()` if given, else `check`'s last result)."""
    deadline = time.monotonic() + timeout
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(_timed_out(what, timeout, seen() if seen else last))
        time.sleep(poll)


async def wait_until_async(
    check: Callable[[], Awaitable[object]],
    what: str,
    timeout: float = WAIT_SECONDS,
    seen: Callable[[], object] | None = None,
) -> Any:
    """`wait_until` inside an event loop: `check` is awaited, the loop runs between polls."""
    deadline = time.monotonic() + timeout
    while True:
        last = await check()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(_timed_out(what, timeout, seen() if seen else last))
        await asyncio.sleep(POLL_SECONDS)


def _timed_out(what: str, timeout: float, last: object) -> str:
    return f"timed out after {timeout} s waiting for {what}; last seen: {last!r}"


def subscribers(client: redis.Redis, channel: str) -> int:
    """How many connections are subscribed to `channel` now (PUBSUB NUMSUB)."""
    counts: list[tuple[bytes, int]] = client.pubsub_numsub(channel)  # type: ignore[assignment]
    return int(dict(counts)[channel.encode()])


def lock_waiters(engine: Engine) -> int:
    """How many backends of `engine`'s database wait on a lock now (pg_stat_activity)."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    with engine.connect() as conn:
        return int(conn.scalar(query) or 0)


class _EventCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.events: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        fields = getattr(record, FIELDS_ATTRIBUTE, None)
        if fields is not None:
            self.events.append({**fields, "log_level": record.levelname.lower()})


@contextmanager
def captured_events(name: str = "dashcache") -> Iterator[list[dict[str, Any]]]:
    """The events dashcache's loggers under `name` log inside the block, every level, as dicts
    (event, fields, log_level), taken from the standard `logging` records themselves."""
    logger, collector = logging.getLogger(name), _EventCollector()
    level = logger.level
    logger.addHandler(collector)
    logger.setLevel(logging.DEBUG)
    try:
        yield collector.events
    finally:
        logger.removeHandler(collector)
        logger.setLevel(level)
