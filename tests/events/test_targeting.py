"""Targeting: each row of the table in dashcache.events.targeting, as pure functions."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from dashcache.events import (
    CategoriesChanged,
    CategoryChange,
    EmailCreated,
    EmailDeleted,
    EmailRow,
    EmailUpdated,
    Event,
)
from dashcache.events.targeting import Target, by_scope, targets_of, targets_of_all
from dashcache.keys import Kind

ROW = EmailRow(3, True, False, datetime(2026, 11, 24, tzinfo=UTC))
AGG, BD = Kind.AGGREGATES, Kind.BREAKDOWN


def scoped(kinds: tuple[Kind, ...], *scopes: str) -> set[Target]:
    return {Target(kind, scope) for kind in kinds for scope in scopes}


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (EmailCreated(5, 1, ROW), scoped((AGG, BD), "a5", "all")),
        (EmailDeleted(5, 1, ROW), scoped((AGG, BD), "a5", "all")),
        (EmailUpdated(5, 1, ROW, replace(ROW, is_unread=False)), scoped((AGG,), "a5", "all")),
        (EmailUpdated(5, 1, ROW, replace(ROW, is_auto_labeled=True)), scoped((AGG,), "a5", "all")),
        (
            EmailUpdated(5, 1, ROW, replace(ROW, created_at=ROW.created_at - timedelta(days=9))),
            scoped((AGG,), "a5", "all"),
        ),
        (EmailUpdated(5, 1, ROW, replace(ROW, category_id=None)), scoped((BD,), "a5", "all")),
        (
            EmailUpdated(5, 1, ROW, replace(ROW, category_id=4, is_auto_labeled=True)),
            scoped((AGG, BD), "a5", "all"),
        ),
        (EmailUpdated(5, 1, ROW, ROW), set()),
        (CategoriesChanged((1,), CategoryChange.CREATED), scoped((AGG, BD), "every")),
        (CategoriesChanged((1,), CategoryChange.DELETED), scoped((AGG, BD), "every")),
        (CategoriesChanged((1,), CategoryChange.RENAMED), scoped((BD,), "every")),
    ],
)
def test_each_event_dirties_the_keys_in_the_table(event: Event, expected: set[Target]) -> None:
    """Each targeting row: the event dirties exactly these (kind, scope) keys."""
    assert targets_of(event) == expected


def test_a_batch_groups_into_one_recompute_per_scope() -> None:
    """A batch's keys are merged, then grouped per scope with kinds in a stable order."""
    events = [
        EmailUpdated(5, 1, ROW, replace(ROW, category_id=None)),
        EmailUpdated(5, 2, ROW, replace(ROW, is_unread=False)),
        EmailUpdated(6, 3, ROW, replace(ROW, is_unread=False)),
    ]
    assert by_scope(targets_of_all(events)) == {"a5": (AGG, BD), "a6": (AGG,), "all": (AGG, BD)}
