"""Test helpers: insert emails and categories, store aged values, count queries, poll, capture
logged events."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, event, insert

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
    at the database layer, independent of the reader's own bookkeeping)."""
    seen: list[str] = []

    def before(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if f"FROM {table}" in statement:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    return seen


def wait_until(check: Callable[[], object], what: str, timeout: float = 20.0) -> None:
    """Poll `check` until it returns something true; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


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
