"""Publishing events from SQLAlchemy sessions: after a successful commit only, one batch each.

    track_mutations(SessionFactory)          # once, at start-up

Every `Email` / `Category` insert, update and delete flushed by those sessions is collected
(before values from attribute history, or read before the flush for deletes) and published as
one batch right after the transaction commits. A rollback publishes nothing.

On PostgreSQL each email event carries the transaction's id (`SELECT pg_current_xact_id()`, once
per transaction, at its first flush with email changes), so it updates the counts by deltas; and
a transaction's changes of one email are merged into one net event (first `before`, last
`after`; created then deleted is nothing). Events are published without a txid, so recomputed
from the table, where a delta could be wrong: on SQLite, for an email moved to another account
(a delete and a create), and in a transaction that used a savepoint (a rolled back savepoint's
events are kept: an extra event only costs a recompute, a missing one a stale value).

Not seen: bulk `update()` / `delete()` / `insert()` statements and raw SQL. Whoever runs them
publishes the matching events (`shared.events.publish_many`) after committing.
A publish failure after the commit is logged (`event.publish_failed`), never raised: the data
is committed, and the schedule refreshes the values within one period.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import cache
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from shared.errors import InvalidEvent
from shared.events.publisher import publish_many as default_publish_many
from shared.events.types import (
    CategoriesChanged,
    CategoryChange,
    EmailCreated,
    EmailDeleted,
    EmailRow,
    EmailUpdated,
    Event,
)
from shared.logging import get_logger
from shared.models import Category, Email
from shared.snapshots import current_txid

COUNTED = ("category_id", "is_unread", "is_auto_labeled", "created_at")
_PENDING = "dashcache.events"
_TXID = "dashcache.txid"
_NESTED = "dashcache.nested"

log = get_logger(__name__)

Publish = Callable[[list[Event]], object]
SessionFactory = sessionmaker[Session] | type[Session]


def track_mutations(session_factory: SessionFactory, publish: Publish | None = None) -> None:
    """Publish the events of every transaction committed by sessions of `session_factory`."""
    send = publish or default_publish_many
    _load_old_values_on_set()

    def before_flush(session: Session, _context: object, _instances: object) -> None:
        pending = session.info.setdefault(_PENDING, [])
        for obj in session.deleted:
            if isinstance(obj, Email):
                pending.append(EmailDeleted(obj.account_id, obj.id, _row(obj, old=True)))
            elif isinstance(obj, Category):
                pending.append(CategoriesChanged((obj.id,), CategoryChange.DELETED))

    def after_flush(session: Session, _context: object) -> None:
        pending = session.info.setdefault(_PENDING, [])
        try:
            pending.extend(_created(session.new))
            pending.extend(_updated(obj for obj in session.dirty if session.is_modified(obj)))
        except InvalidEvent as error:  # never fail the host's flush; the schedule heals
            log.error("event.rejected", field=error.field, reason=str(error))
        if _TXID not in session.info and any(isinstance(e, EMAIL_EVENTS) for e in pending):
            session.info[_TXID] = current_txid(session)

    def after_commit(session: Session) -> None:
        events = session.info.pop(_PENDING, [])
        txid = session.info.pop(_TXID, None)
        if session.info.pop(_NESTED, False):
            txid = None
        if not events:
            return
        try:
            send(net_events(events, txid))
        except Exception as error:  # the commit stands; the schedule heals the values
            log.error("event.publish_failed", events=len(events), error=repr(error))

    def after_transaction_create(session: Session, transaction: SessionTransaction) -> None:
        if transaction.nested:
            session.info[_NESTED] = True

    def after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is None:
            for name in (_PENDING, _TXID, _NESTED):
                session.info.pop(name, None)

    event.listen(session_factory, "before_flush", before_flush)
    event.listen(session_factory, "after_flush", after_flush)
    event.listen(session_factory, "after_commit", after_commit)
    event.listen(session_factory, "after_transaction_create", after_transaction_create)
    event.listen(session_factory, "after_transaction_end", after_transaction_end)


EMAIL_EVENTS = (EmailCreated, EmailUpdated, EmailDeleted)


def net_events(events: list[Event], txid: int | None) -> list[Event]:
    """One transaction's events as published: with no txid, as collected; with one, one net
    event per email carrying it (an email that changed account keeps its events, unmerged and
    without txid)."""
    if txid is None:
        return events
    others: list[Event] = []
    by_email: dict[int, list[EmailCreated | EmailUpdated | EmailDeleted]] = {}
    for item in events:
        if isinstance(item, EMAIL_EVENTS):
            by_email.setdefault(item.email_id, []).append(item)
        else:
            others.append(item)
    merged: list[Event] = []
    for changes in by_email.values():
        if len({change.account_id for change in changes}) > 1:
            merged += changes
            continue
        merged += _net(changes, txid)
    return merged + others


def _net(changes: list[EmailCreated | EmailUpdated | EmailDeleted], txid: int) -> list[Event]:
    first, last = changes[0], changes[-1]
    before = None if isinstance(first, EmailCreated) else first.before
    after = None if isinstance(last, EmailDeleted) else last.after
    account_id, email_id = first.account_id, first.email_id
    if after is None:
        return [] if before is None else [EmailDeleted(account_id, email_id, before, txid=txid)]
    if before is None:
        return [EmailCreated(account_id, email_id, after, txid=txid)]
    if before == after:
        return []
    return [EmailUpdated(account_id, email_id, before, after, txid=txid)]


def _created(objects: Iterable[Any]) -> Iterable[Event]:
    categories = []
    for obj in objects:
        if isinstance(obj, Email):
            yield EmailCreated(obj.account_id, obj.id, _row(obj, old=False))
        elif isinstance(obj, Category):
            categories.append(obj.id)
    if categories:
        yield CategoriesChanged(tuple(categories), CategoryChange.CREATED)


def _updated(objects: Iterable[Any]) -> Iterable[Event]:
    renamed = []
    for obj in objects:
        if isinstance(obj, Email):
            before, after = _row(obj, old=True), _row(obj, old=False)
            old_account = _value(obj, "account_id", old=True)
            if old_account != obj.account_id:
                yield EmailDeleted(old_account, obj.id, before)
                yield EmailCreated(obj.account_id, obj.id, after)
            elif before != after:
                yield EmailUpdated(obj.account_id, obj.id, before, after)
        elif isinstance(obj, Category) and _value(obj, "name", old=True) != obj.name:
            renamed.append(obj.id)
    if renamed:
        yield CategoriesChanged(tuple(renamed), CategoryChange.RENAMED)


def _row(obj: Email, old: bool) -> EmailRow:
    category_id, is_unread, is_auto_labeled, created_at = (
        _value(obj, name, old) for name in COUNTED
    )
    # The flags as the database stored them: a host may have set 1 or 0.
    return EmailRow(category_id, bool(is_unread), bool(is_auto_labeled), created_at)


def _value(obj: object, name: str, old: bool) -> Any:
    """An attribute's value before the pending change (`old`) or after it."""
    history = inspect(obj).attrs[name].history
    if old and history.deleted:
        return history.deleted[0]
    if not old and history.added:
        return history.added[0]
    if history.unchanged:
        return history.unchanged[0]
    return getattr(obj, name)


@cache
def _load_old_values_on_set() -> None:
    """Make SQLAlchemy load an expired attribute's old value when it is set, so history has it."""
    attributes = [getattr(Email, name) for name in (*COUNTED, "account_id")] + [Category.name]
    for attribute in attributes:
        event.listen(attribute, "set", _keep, active_history=True)


def _keep(_target: object, _value: object, _old: object, _initiator: object) -> None:
    """Listens only so that the old value is loaded (`active_history`)."""
