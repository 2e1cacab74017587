"""Session tracking: one batch per committed transaction, nothing on rollback."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from dashcache.events import (
    CategoriesChanged,
    CategoryChange,
    EmailCreated,
    EmailDeleted,
    EmailRow,
    EmailUpdated,
    Event,
    track_mutations,
)
from dashcache.models import Category, Email
from tests.eventing import without_txid
from tests.helpers import NOW, Row, add_categories, add_emails


def tracked(
    engine: Engine, keep_txid: bool = False, **options: bool
) -> tuple[sessionmaker[Session], list[list[Event]]]:
    """A session factory whose published batches land in the returned list (without their
    txids unless `keep_txid`)."""
    batches: list[list[Event]] = []
    factory = sessionmaker(engine, **options)
    if keep_txid:
        track_mutations(factory, batches.append)
    else:
        track_mutations(factory, lambda events: batches.append(list(map(without_txid, events))))
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
    """Updates carry the old values (even of expired attributes); a move is delete + create;
    two flushes changing one email in one transaction publish one net update."""
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
            EmailUpdated(1, id_one, old_one, EmailRow(2, False, False, moved_one.created_at)),
            EmailDeleted(1, id_two, old_two),
            EmailCreated(9, id_two, old_two),
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


def test_postgresql_events_carry_the_transaction_id_one_net_event_per_email(pg: Engine) -> None:
    """Every email event of a transaction carries its pg_current_xact_id; created then deleted
    in one transaction publishes nothing; a moved email keeps its two events, without txid."""
    add_emails(pg, [Row(1, None, True, False, NOW), Row(1, None, True, False, NOW)])
    factory, batches = tracked(pg, keep_txid=True)
    with factory() as session:
        first, second = session.scalars(select(Email).order_by(Email.id)).all()
        id_first, id_second = first.id, second.id
        first.is_unread = False
        session.flush()
        first.is_auto_labeled = True
        second.account_id = 5
        gone = new_email(1, None)
        session.add(gone)
        session.flush()
        session.delete(gone)
        txid = session.connection().exec_driver_sql("SELECT pg_current_xact_id()::text").scalar()
        session.commit()
    [batch] = batches
    net = EmailUpdated(
        1,
        id_first,
        EmailRow(None, True, False, NOW),
        EmailRow(None, False, True, NOW),
        txid=int(txid),
    )
    moved = [
        EmailDeleted(1, id_second, EmailRow(None, True, False, NOW)),
        EmailCreated(5, id_second, EmailRow(None, True, False, NOW)),
    ]
    assert batch == [net, *moved]


def test_a_savepoint_or_sqlite_publishes_without_txid(pg: Engine, sqlite_engine: Engine) -> None:
    """A transaction that used a savepoint, and any SQLite transaction, publish events without
    txid: they are recomputed from the table."""
    for engine in (pg, sqlite_engine):
        factory, batches = tracked(engine, keep_txid=True)
        with factory() as session:
            session.add(new_email(1, None))
            if engine is pg:
                with session.begin_nested():
                    session.add(new_email(2, None))
            session.commit()
        assert [event.txid for batch in batches for event in batch] in ([None], [None, None])


def test_a_rolled_back_savepoint_publishes_none_of_its_events(pg: Engine) -> None:
    """Events flushed inside a savepoint that rolled back are dropped (their rows would tell a
    change the table never got); those before it (flushed as it begins) and after it are
    published."""
    factory, batches = tracked(pg)
    with factory() as session:
        session.add(new_email(1, None))
        try:
            with session.begin_nested():
                session.add(new_email(2, None))
                session.flush()
                raise RuntimeError("roll the savepoint back")
        except RuntimeError:
            pass
        with session.begin_nested():
            session.add(new_email(3, None))
        session.commit()
    assert [event.account_id for batch in batches for event in batch] == [1, 3]
