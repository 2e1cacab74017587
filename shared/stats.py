"""Dashboard statistics: one pass over `emails` feeds every number of a scope, or of all scopes.

The queries group by category (and by account when warming every scope) and count with FILTER,
so one scan yields totals, flags, both growth windows and the breakdown. Folding those counts
into dashboard values is pure (`tally`, `Folder`, `fold_counts`); warming every scope streams
the rows and folds them a batch of accounts at a time (`stream_every_scope`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import groupby
from operator import itemgetter
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, null, select
from sqlalchemy.orm import Session

from dashcache.keys import Scope
from dashcache.schema.tables import MappedTables, tables_of
from dashcache.windows import Crossings, floor_minute, growth_percentage

WEEK = timedelta(days=7)
BATCH_SCOPES = 1000
"""Scopes an every-scope pass folds and hands on at a time."""
STREAM_ROWS = 10_000
"""Rows fetched from the database at a time while streaming."""


@dataclass(slots=True)
class Counts:
    """Counts of one group of emails (a category within a scope, or a whole scope)."""

    total: int = 0
    auto_labeled: int = 0
    unread: int = 0
    this_week: int = 0
    previous_week: int = 0

    def add(self, other: Counts) -> None:
        """Accumulate `other` into self."""
        self.total += other.total
        self.auto_labeled += other.auto_labeled
        self.unread += other.unread
        self.this_week += other.this_week
        self.previous_week += other.previous_week


@dataclass(frozen=True, slots=True)
class ScopeStats:
    """Every dashboard number of one scope.

    `aggregates` is the JSON-ready aggregates dict; `breakdown` holds (category name, count)
    pairs ordered by count descending then name, every category included, cut to the maximum.
    `counted` (the raw counts, every category's included), `taxonomy` ((id, name) by name) and
    `limit` (the maximum) are what a delta-maintained state is built from, with `crossings`
    (shared/windows.py) for the aggregates'.
    """

    aggregates: dict[str, Any]
    breakdown: list[tuple[str, int]] = field(default_factory=list)
    counted: Tally | None = field(default=None, compare=False)
    taxonomy: Sequence[tuple[int, str]] = field(default=(), compare=False)
    limit: int = field(default=0, compare=False)
    crossings: Crossings | None = field(default=None, compare=False)


def aggregates_from(counts: Counts, categories_count: int) -> dict[str, Any]:
    """The aggregates dict, in the shape the email app's repository returns."""
    return {
        "total_emails": counts.total,
        "auto_labeled": counts.auto_labeled,
        "categories_count": categories_count,
        "unread_count": counts.unread,
        "weekly_growth": {
            "emails": counts.this_week,
            "previous": counts.previous_week,
            "percentage": growth_percentage(counts.this_week, counts.previous_week),
        },
    }


CountRow = tuple[Scope, int | None, int, int, int, int, int]
"""One group's counts: (scope, category id, total, auto_labeled, unread, this week, previous
week), the columns of `counts_query` with the scope first."""


def breakdown_from(
    by_category: Mapping[int, int], by_name: Sequence[tuple[int, str]], limit: int
) -> list[tuple[str, int]]:
    """Every category with its count (zero included), by count desc then name asc, cut to limit.

    `by_name` is the taxonomy as (id, name) pairs ordered by name: the sort by count is stable,
    so ties keep that order.
    """
    pairs = [(name, by_category.get(cid, 0)) for cid, name in by_name]
    pairs.sort(key=itemgetter(1), reverse=True)
    return pairs[:limit]


@dataclass(slots=True)
class Tally:
    """The counts of some rows: their totals, and their total per category."""

    counts: Counts = field(default_factory=Counts)
    by_category: dict[int, int] = field(default_factory=dict)

    def add(self, other: Tally) -> None:
        """Accumulate `other` into self."""
        self.counts.add(other.counts)
        for cid, total in other.by_category.items():
            self.by_category[cid] = self.by_category.get(cid, 0) + total


def tally(rows: Sequence[CountRow]) -> Tally:
    """Column sums of some rows (`zip` and `sum`, no per-row arithmetic); uncategorized emails
    count in the totals, not in any category."""
    if not rows:
        return Tally()
    _, category_ids, *columns = zip(*rows, strict=True)
    by_category: dict[int, int] = {}
    for cid, total in zip(category_ids, columns[0], strict=True):
        if cid is not None:
            by_category[cid] = by_category.get(cid, 0) + total
    return Tally(Counts(*map(sum, columns)), by_category)


class Folder:
    """Turns tallies into dashboard values, for one taxonomy and breakdown size."""

    def __init__(self, categories: Mapping[int, str], max_breakdown: int) -> None:
        self.by_name = sorted(categories.items(), key=itemgetter(1))
        self.max_breakdown = max_breakdown

    def stats(self, counted: Tally) -> ScopeStats:
        """Every number of the scope whose rows were tallied."""
        return ScopeStats(
            aggregates_from(counted.counts, len(self.by_name)),
            breakdown_from(counted.by_category, self.by_name, self.max_breakdown),
            counted,
            self.by_name,
            self.max_breakdown,
        )


def fold_counts(
    rows: Iterable[CountRow],
    categories: Mapping[int, str],
    max_breakdown: int,
    include: Iterable[Scope] = (),
) -> dict[Scope, ScopeStats]:
    """Fold count rows into stats per scope (the scope is each row's first column).

    Scopes in `include` are present even without rows (all zeros).
    """
    grouped: dict[Scope, list[CountRow]] = {scope: [] for scope in include}
    for row in rows:
        grouped.setdefault(row[0], []).append(row)
    folder = Folder(categories, max_breakdown)
    return {scope: folder.stats(tally(scope_rows)) for scope, scope_rows in grouped.items()}


def compute_scope(
    session: Session, account_id: Scope, now: datetime, max_breakdown: int
) -> ScopeStats:
    """Every number of one scope (one account, or all accounts when None), as of `now`."""
    tables = tables_of(session)
    query = counts_query(tables, now).where(*tables.scope_filter(account_id))
    query = query.group_by(tables.category)
    rows = [(account_id, *row) for row in session.connection().execute(query)]
    categories = load_categories(session)
    return fold_counts(rows, categories, max_breakdown, include=[account_id])[account_id]


def stream_every_scope(
    session: Session,
    now: datetime,
    max_breakdown: int,
    include: Iterable[int] = (),
    batch_scopes: int = BATCH_SCOPES,
    accounts: range | None = None,
) -> Iterator[dict[Scope, ScopeStats]]:
    """Every number of every account with emails, then of all accounts: one grouped pass.

    The rows stream in account order (a server-side cursor on PostgreSQL) and come out folded,
    `batch_scopes` accounts at a time, so memory stays bounded however many accounts there are.
    The last batch holds the all-accounts scope (None) and the accounts in `include` (scopes
    warmed before) that have no emails left, with zeros. With `accounts` (a shard), only the
    account ids in that range are read, and the all-accounts scope is left out.
    """
    folder = Folder(load_categories(session), max_breakdown)
    tables = tables_of(session)
    query = streamed_every_scope_query(tables, now)
    if accounts is not None:
        query = query.where(*tables.range_filter(accounts.start, accounts.stop))
    rows = session.connection().execute(query)
    every = Tally()
    emptied = set(include)
    batch: dict[Scope, ScopeStats] = {}
    for account_id, account_rows in groupby(rows, key=itemgetter(0)):
        counted = tally(list(account_rows))
        every.add(counted)
        emptied.discard(account_id)
        batch[account_id] = folder.stats(counted)
        if len(batch) >= batch_scopes:
            yield batch
            batch = {}
    for account_id in sorted(emptied):
        batch[account_id] = folder.stats(Tally())
    if accounts is None:
        batch[None] = folder.stats(every)
    if batch:
        yield batch


def compute_every_scope(
    session: Session, now: datetime, max_breakdown: int, include: Iterable[int] = ()
) -> dict[Scope, ScopeStats]:
    """`stream_every_scope` gathered into one mapping (for checks; the worker streams)."""
    return {
        scope: stats
        for batch in stream_every_scope(session, now, max_breakdown, include)
        for scope, stats in batch.items()
    }


def compute_accounts(
    session: Session, account_ids: Iterable[int], now: datetime, max_breakdown: int
) -> dict[Scope, ScopeStats]:
    """Every number of each given account (not of all accounts), as of `now`: one grouped pass."""
    ids = sorted(set(account_ids))
    tables = tables_of(session)
    query = every_scope_query(tables, now).where(tables.accounts_filter(ids))
    rows = session.connection().execute(query)
    categories = load_categories(session)
    return fold_counts(rows, categories, max_breakdown, include=ids)


def streamed_every_scope_query(
    tables: MappedTables, now: datetime
) -> Select[int | None, int | None, int, int, int, int, int]:
    """`every_scope_query` in account order, fetched `STREAM_ROWS` at a time (a server-side
    cursor on PostgreSQL): what `stream_every_scope` reads."""
    query = every_scope_query(tables, now)
    if tables.account is not None:
        query = query.order_by(tables.account)
    return query.execution_options(yield_per=STREAM_ROWS)


def every_scope_query(
    tables: MappedTables, now: datetime | ColumnElement[datetime]
) -> Select[int | None, int | None, int, int, int, int, int]:
    """Counts per (account, category): the account, then the columns of `counts_query`.

    Single-tenant (no account column), the account is NULL: one scope, all accounts.
    """
    counts = counts_query(tables, now)
    if tables.account is None:
        query = counts.with_only_columns(null(), *counts.selected_columns)
        return query.group_by(tables.category)
    query = counts.with_only_columns(tables.account, *counts.selected_columns)
    return query.group_by(tables.account, tables.category)


def load_categories(session: Session) -> dict[int, str]:
    """Category id -> name, for the whole shared taxonomy."""
    tables = tables_of(session)
    query = select(tables.category_id, tables.category_name)
    return {cid: name for cid, name in session.execute(query)}


def counts_query(
    tables: MappedTables, now: datetime | ColumnElement[datetime]
) -> Select[int | None, int, int, int, int, int]:
    """Counts per category with every counted condition as a FILTER; time bounds fixed once.

    The windows are counted as of `now` floored to its minute (shared/windows.py), and the
    current week is open at its end: an email created after `now` (a later insert, or one dated
    in the future) counts in it, as a delta does (docs/deltas.md). `now` is a datetime, or a SQL
    expression such as `func.now()` for a stored query (a view).
    """
    as_of = floor_minute(now) if isinstance(now, datetime) else func.date_trunc("minute", now)
    week_start, previous_start = as_of - WEEK, as_of - 2 * WEEK
    created = tables.created_at
    query = select(
        tables.category,
        func.count(),
        func.count().filter(tables.auto_labeled),
        func.count().filter(tables.unread),
        func.count().filter(created >= week_start),
        func.count().filter(and_(created >= previous_start, created < week_start)),
    )
    return query.select_from(tables.emails)
