"""Demo data: bulk-load synthetic categories and emails (`dashcache seed`).

Generation is pure (`category_names`, `generate_rows`); the writers do the I/O: PostgreSQL
streams text-format COPY chunks, SQLite uses `executemany` chunks in one transaction.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice

from sqlalchemy import Connection, Engine, func, insert, select, text

from dashcache.errors import InvalidArgument
from dashcache.models import Category, Email

CHUNK_SIZE = 50_000
MAX_DAYS = 36_500
NULL_CATEGORY_SHARE = 0.10
UNREAD_SHARE = 0.30
AUTO_LABELED_SHARE = 0.60
NAMED_CATEGORIES = (
    "Work", "Personal", "Newsletters", "Promotions", "Social", "Updates", "Finance",
    "Travel", "Shopping", "Receipts", "Family", "Friends", "Events", "Health", "Education",
    "Jobs", "Bills", "Support", "Security", "Notifications",
)  # fmt: skip

Row = tuple[int, str, int, int | None, bool, bool, str]
"""(id, message_id, account_id, category_id, is_unread, is_auto_labeled, created_at).

created_at is naive UTC text "YYYY-MM-DD HH:MM:SS.ffffff", the form SQLAlchemy's DateTime
stores on SQLite; updated_at equals it.
"""

COPY_PIECE = 2_000
_SQLITE_INSERT = (
    "INSERT INTO emails (id, message_id, account_id, category_id, is_unread, is_auto_labeled, "
    "created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)"
)
_PG_COPY = (
    "COPY emails (id, message_id, account_id, category_id, is_unread, is_auto_labeled, "
    "created_at, updated_at) FROM STDIN"
)
_PG_SET_SEQUENCES = (
    "SELECT setval(pg_get_serial_sequence('categories', 'id'), max(id)) FROM categories "
    "HAVING max(id) IS NOT NULL",
    "SELECT setval(pg_get_serial_sequence('emails', 'id'), max(id)) FROM emails "
    "HAVING max(id) IS NOT NULL",
)


@dataclass(frozen=True, slots=True)
class SeedPlan:
    """What `seed_database` inserts; same plan and same `now` give byte-identical rows."""

    emails: int
    categories: int
    accounts: int
    days: int = 30
    seed: int = 0


def validate_plan(plan: SeedPlan) -> None:
    """Raise InvalidArgument naming the CLI option of the first out-of-range field."""
    limits = {
        "emails": (0, None),
        "categories": (0, None),
        "accounts": (1, None),
        "days": (1, MAX_DAYS),
        "seed": (None, None),
    }
    for field, (low, high) in limits.items():
        value = getattr(plan, field)
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidArgument(f"--{field} must be an integer, not {value!r}")
        if low is not None and value < low:
            raise InvalidArgument(f"--{field} must be >= {low}, not {value}")
        if high is not None and value > high:
            raise InvalidArgument(f"--{field} must be <= {high}, not {value}")


def category_names(count: int) -> list[str]:
    """`count` unique names: realistic ones first, then "Category 021", "Category 022", ..."""
    named = list(NAMED_CATEGORIES[:count])
    return named + [f"Category {n:03d}" for n in range(len(named) + 1, count + 1)]


def generate_rows(
    plan: SeedPlan, now: datetime, first_id: int, category_ids: Sequence[int]
) -> Iterator[Row]:
    """Yield `plan.emails` rows with ids from `first_id`, deterministic in (plan, now, first_id).

    Accounts are log-uniform over 1..accounts (P(k) ~ 1/k: account 1 is the biggest);
    categories are uniform over `category_ids`, ~10% NULL (all NULL if there are none);
    created_at is uniform in [now - days, now).
    """
    validate_plan(plan)
    rng = random.Random(plan.seed)
    rand = rng.random
    start = (_utc(now) - timedelta(days=plan.days)).replace(tzinfo=None)
    span = plan.days * 86_400_000_000  # microseconds
    account_base = plan.accounts + 1  # int(base ** u) for u in [0, 1) lies in 1..accounts
    categories = tuple(category_ids)
    n_categories = len(categories)
    null_share = NULL_CATEGORY_SHARE if n_categories else 2.0
    for email_id in range(first_id, first_id + plan.emails):
        category = None if rand() < null_share else categories[int(rand() * n_categories)]
        offset = min(int(rand() * span), span - 1)  # float rounding must not reach `now`
        yield (
            email_id,
            f"seed-{email_id:012d}@dashcache.invalid",
            min(int(account_base ** rand()), plan.accounts),
            category,
            rand() < UNREAD_SHARE,
            rand() < AUTO_LABELED_SHARE,
            (start + timedelta(microseconds=offset)).isoformat(" ", "microseconds"),
        )


def seed_database(
    engine: Engine,
    plan: SeedPlan,
    now: datetime,
    progress: Callable[[int], None] | None = None,
    *,
    chunk_size: int = CHUNK_SIZE,
) -> int:
    """Append the plan's categories and emails in one transaction; return the emails inserted.

    Categories are looked up by name: an existing one is reused (keeping its id), missing
    ones get ids after the current maximum, so on empty tables they are 1..categories.
    Emails get ids after the current maximum id and message_ids derived from their ids, so
    they never collide with rows already there. `progress(n)` is called after each chunk.
    On PostgreSQL the tables are locked against concurrent writers for the load, the id
    sequences are moved past the new rows, and `VACUUM ANALYZE emails` runs afterwards.
    """
    validate_plan(plan)
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise InvalidArgument(f"chunk_size must be >= 1, not {chunk_size}")
    now = _utc(now)
    postgres = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        if postgres:
            conn.execute(text("LOCK TABLE categories, emails IN SHARE ROW EXCLUSIVE MODE"))
        category_ids = _ensure_categories(conn, category_names(plan.categories), now)
        first_id = (conn.scalar(select(func.max(Email.id))) or 0) + 1
        rows = generate_rows(plan, now, first_id, category_ids)
        chunks = (islice(rows, chunk_size) for _ in range(0, plan.emails, chunk_size))
        inserted = (_copy_rows if postgres else _executemany_rows)(conn, chunks, progress)
        if postgres:
            for statement in _PG_SET_SEQUENCES:
                conn.execute(text(statement))
    if postgres and inserted:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM (ANALYZE) emails"))  # sets the visibility map too
    return inserted


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise InvalidArgument(f"now must be timezone-aware, not {moment!r}")
    return moment.astimezone(UTC)


def _ensure_categories(conn: Connection, names: list[str], now: datetime) -> list[int]:
    """Ids of `names` in order, inserting the missing ones after the current maximum id."""
    existing = {name: id_ for name, id_ in conn.execute(select(Category.name, Category.id))}
    next_id = max(existing.values(), default=0) + 1
    missing = [name for name in names if name not in existing]
    new = {name: next_id + n for n, name in enumerate(missing)}
    if new:
        conn.execute(
            insert(Category), [{"id": i, "name": n, "created_at": now} for n, i in new.items()]
        )
    return [existing[name] if name in existing else new[name] for name in names]


def _executemany_rows(
    conn: Connection, chunks: Iterator[Iterator[Row]], progress: Callable[[int], None] | None
) -> int:
    inserted = 0
    for chunk in chunks:
        rows = list(chunk)
        conn.exec_driver_sql(_SQLITE_INSERT, rows)
        inserted += len(rows)
        if progress is not None:
            progress(len(rows))
    return inserted


class _CopySource:
    """A file for psycopg2's `copy_expert`: COPY text lines, a few thousand rows per `read`.

    Small reads keep the socket full, so the server indexes rows while more are generated.
    """

    def __init__(self, rows: Iterator[Row]) -> None:
        self.rows = rows
        self.count = 0

    def read(self, _size: int = -1) -> str:
        lines = []
        for email_id, message_id, account, category, unread, auto, created in islice(
            self.rows, COPY_PIECE
        ):
            cat = r"\N" if category is None else category
            flags = ("t" if unread else "f") + ("\tt" if auto else "\tf")
            line = f"{email_id}\t{message_id}\t{account}\t{cat}\t{flags}\t{created}+00"
            lines.append(f"{line}\t{created}+00\n")
        self.count += len(lines)
        return "".join(lines)


def _copy_rows(
    conn: Connection, chunks: Iterator[Iterator[Row]], progress: Callable[[int], None] | None
) -> int:
    """One COPY per chunk: its end runs the chunk's deferred foreign-key checks."""
    inserted = 0
    with conn.connection.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
        for chunk in chunks:
            source = _CopySource(chunk)
            cursor.copy_expert(_PG_COPY, source)
            inserted += source.count
            if progress is not None:
                progress(source.count)
    return inserted
