"""Test data helpers: insert emails and categories with plain tuples."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, insert

from shared.models import Category, Email

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
