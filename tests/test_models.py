"""The schema: idempotent creation, UTC timestamps on both dialects."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session

from dashcache.db import init_db, make_engine
from dashcache.models import Category, Email


def test_init_db_is_idempotent(any_db: Engine) -> None:
    """Creating the tables twice changes nothing and raises nothing."""
    init_db(any_db)
    init_db(any_db)


def test_timestamps_come_back_aware_utc(any_db: Engine) -> None:
    """A timestamp written in another zone is read back as the same instant in UTC."""
    plus_two = timezone(timedelta(hours=2))
    written = datetime(2026, 1, 1, 12, 0, tzinfo=plus_two)
    with Session(any_db) as session:
        session.add(Category(id=1, name="work"))
        session.add(
            Email(
                message_id="m1",
                account_id=1,
                category_id=1,
                is_unread=True,
                is_auto_labeled=False,
                created_at=written,
                updated_at=written,
            )
        )
        session.commit()
    with Session(any_db) as session:
        read = session.scalars(select(Email.created_at)).one()
    assert read == written
    assert read.tzinfo == UTC


def test_naive_datetime_is_refused(any_db: Engine) -> None:
    """A naive datetime would be ambiguous, so writing one fails loudly."""
    naive = datetime(2026, 1, 1)
    with Session(any_db) as session:
        session.add(
            Email(
                message_id="m1",
                account_id=1,
                is_unread=True,
                is_auto_labeled=False,
                created_at=naive,
                updated_at=naive,
            )
        )
        with pytest.raises(StatementError, match="timezone-aware"):
            session.commit()


def test_plain_postgresql_url_uses_psycopg2(pg_url: str) -> None:
    """`postgresql://` (no driver) connects with psycopg2, the driver dashcache installs."""
    plain = pg_url.replace("postgresql+psycopg2://", "postgresql://")
    engine = make_engine(plain)
    try:
        with engine.connect() as conn:
            assert conn.execute(select(1)).scalar_one() == 1
        assert engine.dialect.driver == "psycopg2"
    finally:
        engine.dispose()
