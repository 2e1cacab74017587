"""The emails that will cross a window start soon after a recount, counted by minute (PostgreSQL).

Read in the recount's own snapshot, so a value's state holds its crossings as of the same
moment as its counts (shared/windows.py). Only emails created in two spans of HORIZON_MINUTES
are read: the cost follows the emails that cross, not the table.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import BigInteger, ColumnElement, Select, and_, cast, func, null, or_, select
from sqlalchemy.orm import Session

from dashcache.keys import Scope
from dashcache.schema.tables import MappedTables, tables_of
from dashcache.windows import Crossings, crossing_ranges

CrossingRow = tuple[int | None, bool, int, int]
"""(account, in the week before, minute created, emails)."""


def crossings_query(tables: MappedTables, base: int) -> Select[int | None, bool, int, int]:
    """Emails crossing a window start in (base, base + horizon], by account and minute."""
    (week_start, week_end), (previous_start, previous_end) = crossing_ranges(base)
    created = tables.created_at
    previous = created < week_start
    minute = cast(func.floor(func.extract("epoch", created) / 60), BigInteger)
    account = tables.account if tables.account is not None else null()
    query = select(account, previous, minute, func.count()).select_from(tables.emails)
    query = query.where(
        or_(
            and_(created >= week_start, created < week_end),
            and_(created >= previous_start, created < previous_end),
        )
    )
    if tables.account is None:
        return query.group_by(previous, minute)
    return query.group_by(tables.account, previous, minute)


def crossings_by_scope(
    session: Session,
    base: int,
    where: Iterable[ColumnElement[bool]] = (),
    every: bool = False,
) -> dict[Scope, Crossings]:
    """Crossings per account among the emails `where` selects; with `every`, the all-accounts
    scope (None) too: their sum."""
    tables = tables_of(session)
    rows = session.connection().execute(crossings_query(tables, base).where(*where))
    found: dict[Scope, Crossings] = {}
    total = Crossings()
    for account, previous, minute, emails in rows:
        found.setdefault(account, Crossings()).count(minute, previous, emails)
        if every and account is not None:
            total.count(minute, previous, emails)
    if every and tables.account is not None:
        found[None] = total
    return found


def scope_crossings(session: Session, base: int, account_id: Scope) -> Crossings:
    """The crossings of one scope (one account, or all accounts when None)."""
    tables = tables_of(session)
    if account_id is None:
        return crossings_by_scope(session, base, every=True).get(None, Crossings())
    found = crossings_by_scope(session, base, tables.scope_filter(account_id))
    return found.get(account_id, Crossings())
