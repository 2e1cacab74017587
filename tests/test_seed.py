"""`dashcache.seed`: bulk-loaded demo data on both dialects."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from dashcache.db import init_db, make_engine
from dashcache.errors import InvalidArgument
from dashcache.models import Category, Email
from dashcache.seed import SeedPlan, category_names, generate_rows, seed_database

NOW = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))


def _emails(engine: Engine) -> list[Email]:
    with Session(engine) as session:
        return list(session.scalars(select(Email).order_by(Email.id)))


def _raw_rows(engine: Engine) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        emails = conn.exec_driver_sql("SELECT * FROM emails ORDER BY id").all()
        categories = conn.exec_driver_sql("SELECT * FROM categories ORDER BY id").all()
    return [tuple(row) for row in categories + emails]


def _fresh_sqlite(path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{path}")
    init_db(engine)
    return engine


def test_counts_and_shares(any_db: Engine) -> None:
    """The plan's numbers of rows land, with ids 1..n and roughly the documented shares."""
    plan = SeedPlan(emails=5000, categories=20, accounts=50)
    assert seed_database(any_db, plan, NOW) == 5000
    emails = _emails(any_db)
    with Session(any_db) as session:
        categories = session.execute(select(Category.id, Category.name)).all()
    assert sorted(categories) == list(enumerate(category_names(20), start=1))
    assert [e.id for e in emails] == list(range(1, 5001))
    assert {e.account_id for e in emails} <= set(range(1, 51))
    assert {e.category_id for e in emails} <= {None, *range(1, 21)}
    assert sum(e.category_id is None for e in emails) / 5000 == pytest.approx(0.10, abs=0.03)
    assert sum(e.is_unread for e in emails) / 5000 == pytest.approx(0.30, abs=0.04)
    assert sum(e.is_auto_labeled for e in emails) / 5000 == pytest.approx(0.60, abs=0.04)
    accounts = Counter(e.account_id for e in emails)
    assert accounts.most_common(1)[0][0] == 1
    assert accounts[1] > 5 * accounts[50]


def test_zero_categories_leaves_every_email_uncategorised(any_db: Engine) -> None:
    """With --categories 0 no category is created and every category_id is NULL."""
    seed_database(any_db, SeedPlan(emails=500, categories=0, accounts=3), NOW)
    with Session(any_db) as session:
        assert session.scalar(select(func.count()).select_from(Category)) == 0
    assert {e.category_id for e in _emails(any_db)} == {None}


def test_same_seed_gives_identical_rows(tmp_path: Path) -> None:
    """Same plan and now into two fresh files give identical rows; another seed does not."""
    engines = [_fresh_sqlite(tmp_path / f"{n}.db") for n in range(3)]
    plan = SeedPlan(emails=3000, categories=12, accounts=40, days=7, seed=42)
    seed_database(engines[0], plan, NOW)
    seed_database(engines[1], plan, NOW)
    seed_database(engines[2], SeedPlan(emails=3000, categories=12, accounts=40, days=7), NOW)
    try:
        first, second, other = (_raw_rows(engine) for engine in engines)
    finally:
        for engine in engines:
            engine.dispose()
    assert len(first) == 3012
    assert first == second
    assert first != other


def test_generate_rows_is_pure_and_starts_at_first_id() -> None:
    """Generation alone is deterministic and numbers rows from first_id."""
    plan = SeedPlan(emails=100, categories=3, accounts=5, seed=7)
    rows = list(generate_rows(plan, NOW, 1001, [4, 5, 6]))
    assert rows == list(generate_rows(plan, NOW, 1001, [4, 5, 6]))
    assert [row[0] for row in rows] == list(range(1001, 1101))
    assert len({row[1] for row in rows}) == 100
    assert {row[3] for row in rows} <= {None, 4, 5, 6}


def test_created_at_lies_in_window_and_reads_back_utc(any_db: Engine) -> None:
    """Timestamps are aware UTC, in [now - days, now), and compare correctly in SQL."""
    plan = SeedPlan(emails=4000, categories=5, accounts=10, days=3)
    seed_database(any_db, plan, NOW)
    emails = _emails(any_db)
    start = NOW - timedelta(days=3)
    for email in emails:
        assert email.created_at.tzinfo == UTC
        assert start <= email.created_at < NOW
        assert email.updated_at == email.created_at
    middle = NOW - timedelta(days=1, hours=5, microseconds=7)
    with Session(any_db) as session:
        newer = session.scalar(select(func.count()).where(Email.created_at >= middle))
    assert newer == sum(email.created_at >= middle for email in emails)
    assert 0 < newer < len(emails)


def test_appending_twice_does_not_collide(any_db: Engine) -> None:
    """A second run adds rows after the first, reuses its categories, and ORM inserts still work."""
    plan = SeedPlan(emails=2000, categories=8, accounts=10)
    seed_database(any_db, plan, NOW)
    seed_database(any_db, plan, NOW)
    emails = _emails(any_db)
    assert [e.id for e in emails] == list(range(1, 4001))
    assert len({e.message_id for e in emails}) == 4000
    with Session(any_db) as session:
        assert session.scalar(select(func.count()).select_from(Category)) == 8
        session.add(Category(name="Added later"))
        session.add(
            Email(
                message_id="m-after-seed", account_id=1, is_unread=False,
                is_auto_labeled=False, created_at=NOW, updated_at=NOW,
            )
        )  # fmt: skip
        session.commit()
        assert session.scalar(select(func.max(Email.id))) == 4001
        assert session.scalar(select(func.max(Category.id))) == 9


def test_existing_categories_are_reused_by_name(any_db: Engine) -> None:
    """A category already named like a planned one keeps its id; missing ones follow the max."""
    with Session(any_db) as session:
        session.add_all([Category(id=10, name="Personal"), Category(id=3, name="Mine")])
        session.commit()
    seed_database(any_db, SeedPlan(emails=1000, categories=3, accounts=2), NOW)
    with Session(any_db) as session:
        ids = {name: id_ for name, id_ in session.execute(select(Category.name, Category.id))}
    assert ids == {"Mine": 3, "Personal": 10, "Work": 11, "Newsletters": 12}
    assert {e.category_id for e in _emails(any_db)} == {None, 10, 11, 12}


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        (SeedPlan(emails=-1, categories=1, accounts=1), "--emails must be >= 0"),
        (SeedPlan(emails=1, categories=-2, accounts=1), "--categories must be >= 0"),
        (SeedPlan(emails=1, categories=1, accounts=0), "--accounts must be >= 1"),
        (SeedPlan(emails=1, categories=1, accounts=1, days=0), "--days must be >= 1"),
        (SeedPlan(emails=1, categories=1, accounts=1, days=10**9), "--days must be <= "),
        (SeedPlan(emails=1.5, categories=1, accounts=1), "--emails must be an integer"),  # type: ignore[arg-type]
    ],
)
def test_invalid_plan_is_refused(sqlite_engine: Engine, plan: SeedPlan, message: str) -> None:
    """An out-of-range option raises InvalidArgument naming it, and nothing is written."""
    with pytest.raises(InvalidArgument, match=message):
        seed_database(sqlite_engine, plan, NOW)
    assert _raw_rows(sqlite_engine) == []


def test_naive_now_is_refused(sqlite_engine: Engine) -> None:
    """A naive `now` would be ambiguous, so it raises InvalidArgument."""
    with pytest.raises(InvalidArgument, match="timezone-aware"):
        seed_database(
            sqlite_engine, SeedPlan(emails=1, categories=1, accounts=1), datetime(2026, 1, 1)
        )


def test_progress_reports_every_chunk(any_db: Engine) -> None:
    """Progress is called once per chunk and its total equals the emails inserted."""
    calls: list[int] = []
    plan = SeedPlan(emails=2500, categories=4, accounts=3)
    inserted = seed_database(any_db, plan, NOW, calls.append, chunk_size=1000)
    assert calls == [1000, 1000, 500]
    assert sum(calls) == inserted == 2500


def test_zero_emails_calls_no_progress(any_db: Engine) -> None:
    """An empty plan inserts its categories only and reports no progress."""
    calls: list[int] = []
    assert (
        seed_database(any_db, SeedPlan(emails=0, categories=2, accounts=1), NOW, calls.append) == 0
    )
    assert calls == []
    assert _emails(any_db) == []
