"""Session tracking: one batch per committed transaction, nothing on rollback."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from shared.events import (
    CategoriesChanged,
    CategoryChange,
    EmailCreated,
    EmailDeleted,
    EmailRow,
    EmailUpdated,
    Event,
    track_mutations,
)
from shared.models import Category, Email
from tests.helpers import NOW, Row, add_categories, add_emails


def tracked(engine: Engine, **options: bool) -> tuple[sessionmaker[Session], list[list[Event]]]:
    """A session factory whose published batches land in the returned list."""
    batches: list[list[Event]] = []
    factory = sessionmaker(engine, **options)
    track_mutations(factory, batches.append)
    return factory, batches


def new_email(account_id: int, category_id: int | None) -> Email:
    return Email(
        message_id=f"<{account_id}-{category_id}@t>",
        account_id=account_id,
        category_id=category_id,
        is_unread=True,
        is_auto_labeled=False,
        created_at=NOW,
        updated_at=NOW,
    )


def test_rollback_publishes_nothing_and_commit_publishes_once(pg: Engine) -> None:
    """Changes rolled back are never published; a commit publishes one batch after it."""
    add_categories(pg, ["work"])
    factory, batches = tracked(pg)
    with factory() as session:
        session.add(new_email(1, 1))
        session.flush()
        session.rollback()
        assert batches == []
        first, second = new_email(1, 1), new_email(2, None)
        session.add_all([first, second])
        session.flush()
        ids = first.id, second.id
        assert batches == []
        session.commit()
    assert batches == [
        [
            EmailCreated(1, ids[0], EmailRow(1, True, False, NOW)),
            EmailCreated(2, ids[1], EmailRow(None, True, False, NOW)),
        ]
    ]


def test_updates_deletes_and_moves_carry_before_and_after(pg: Engine) -> None:
    """Updates carry the old values (even of expired attributes); a move is delete + create."""
    add_categories(pg, ["work", "news"])
    add_emails(pg, [Row(1, 1, True, False, NOW), Row(1, 2, False, True, NOW)])
    factory, batches = tracked(pg, expire_on_commit=True)
    with factory() as session:
        one, two = session.scalars(select(Email).order_by(Email.id)).all()
        id_one, id_two = one.id, two.id
        session.commit()  # expires every attribute: the old values must be loaded on set
        one.category_id = 2
        one.created_at = NOW - timedelta(days=8)
        two.account_id = 9
        session.flush()
        one.is_unread = False  # a second flush in the same transaction
        session.commit()
        session.delete(one)
        session.commit()
    old_one = EmailRow(1, True, False, NOW)
    moved_one = EmailRow(2, True, False, NOW - timedelta(days=8))
    old_two = EmailRow(2, False, True, NOW)
    assert batches == [
        [
            EmailUpdated(1, id_one, old_one, moved_one),
            EmailDeleted(1, id_two, old_two),
            EmailCreated(9, id_two, old_two),
            EmailUpdated(1, id_one, moved_one, EmailRow(2, False, False, moved_one.created_at)),
        ],
        [EmailDeleted(1, id_one, EmailRow(2, False, False, moved_one.created_at))],
    ]


def test_category_changes_are_published_by_kind(pg: Engine) -> None:
    """Creating, renaming and deleting categories publish CategoriesChanged with the change."""
    add_categories(pg, ["work"])
    factory, batches = tracked(pg)
    with factory() as session:
        work = session.get_one(Category, 1)
        work.name = "office"
        session.add(Category(id=2, name="news"))
        session.commit()
        session.delete(work)
        session.commit()
        session.get_one(Category, 2).created_at = NOW  # not counted: nothing published
        session.commit()
    assert batches == [
        [
            CategoriesChanged((2,), CategoryChange.CREATED),
            CategoriesChanged((1,), CategoryChange.RENAMED),
        ],
        [CategoriesChanged((1,), CategoryChange.DELETED)],
    ]
