"""Which cached values an event makes stale: pure, one table.

| event                                          | dirty keys                                   |
|------------------------------------------------|----------------------------------------------|
| email created / deleted                        | agg + bd of the account and of `all`         |
| email updated: is_unread, is_auto_labeled or created_at changed | agg of account and `all` |
| email updated: category_id changed             | bd of the account and of `all`               |
| email updated: both of the above               | agg + bd of the account and of `all`         |
| email updated: no counted field changed        | nothing                                      |
| categories created / deleted                   | agg + bd of every scope (`every`)            |
| categories renamed                             | bd of every scope (`every`)                  |

`every` is one grouped pass over every scope, coalesced like any other key.
`categories_count` is part of the aggregates, hence creation and deletion dirty them everywhere;
a deleted category also leaves the breakdowns (its emails fall back to no category).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from dashcache.events.types import (
    CategoriesChanged,
    CategoryChange,
    EmailCreated,
    EmailDeleted,
    Event,
)
from dashcache.keys import ALL_SCOPE, EVERY_SCOPE, Kind, scope_token

BOTH = (Kind.AGGREGATES, Kind.BREAKDOWN)


@dataclass(frozen=True, slots=True, order=True)
class Target:
    """One value to recompute: a kind, and a scope token (or `every`)."""

    kind: Kind
    scope: str


def dirty_kinds(event: Event) -> tuple[Kind, ...]:
    """The kinds of value an event changes, per the table above."""
    if isinstance(event, EmailCreated | EmailDeleted):
        return BOTH
    if isinstance(event, CategoriesChanged):
        return (Kind.BREAKDOWN,) if event.change is CategoryChange.RENAMED else BOTH
    before, after = event.before, event.after
    kinds: list[Kind] = []
    if (before.is_unread, before.is_auto_labeled, before.created_at) != (
        after.is_unread,
        after.is_auto_labeled,
        after.created_at,
    ):
        kinds.append(Kind.AGGREGATES)
    if before.category_id != after.category_id:
        kinds.append(Kind.BREAKDOWN)
    return tuple(kinds)


def targets_of(event: Event) -> set[Target]:
    """The keys one event makes stale."""
    kinds = dirty_kinds(event)
    if isinstance(event, CategoriesChanged):
        scopes: tuple[str, ...] = (EVERY_SCOPE,)
    else:
        scopes = (scope_token(event.account_id), ALL_SCOPE)
    return {Target(kind, scope) for kind in kinds for scope in scopes}


def targets_of_all(events: Iterable[Event]) -> set[Target]:
    """The union of the keys a batch of events makes stale."""
    found: set[Target] = set()
    for event in events:
        found |= targets_of(event)
    return found


def by_scope(targets: Iterable[Target]) -> dict[str, tuple[Kind, ...]]:
    """Group targets into one recompute per scope, with its kinds in a stable order."""
    grouped: dict[str, set[Kind]] = {}
    for target in targets:
        grouped.setdefault(target.scope, set()).add(target.kind)
    return {scope: tuple(k for k in BOTH if k in kinds) for scope, kinds in sorted(grouped.items())}
