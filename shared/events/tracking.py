"""Publishing events from SQLAlchemy sessions: after a successful commit only, one batch each.

    track_mutations(SessionFactory)          # once, at start-up

Every insert, update and delete of an email or a category flushed by those sessions is collected
and published as one batch right after the transaction commits. Emails and categories are the
objects of any mapped class of the schema mapping's tables (`mapped_classes.py`): the demo
models, or the host's own classes. Old values come from attribute history; one set on an
expired attribute (after a commit) is read from the row before the flush writes it.
A rollback publishes nothing. Single-tenant (no account column), events carry no account.

On PostgreSQL each email event carries the transaction's id (`SELECT pg_current_xact_id()`, once
per transaction, at its first flush with email changes), so it updates the counts by deltas; and
a transaction's changes of one email are merged into one net event (`netting.py`: first
`before`, last `after`; created then deleted is nothing). Events are published without a txid,
so recomputed from the table, where a delta could be wrong: on SQLite, for an email moved to
another account (a delete and a create), and in a transaction that used a savepoint. A rolled
back savepoint's events are dropped: the recompute expects the change its events' rows explain,
and counts the rest as drift (docs/deltas.md).

Not seen: bulk `update()` / `delete()` / `insert()` statements and raw SQL. Whoever runs them
publishes the matching events (`dashcache.events.publish_many`) after committing.
A publish failure after the commit is logged (`event.publish_failed`), never raised: the data
is committed, and the schedule refreshes the values within one period.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from dashcache.config import Settings
from dashcache.errors import InvalidEvent
from dashcache.events.mapped_classes import EMAIL_ROLES, EmailClass, MappedClass, MappedClasses
from dashcache.events.netting import EMAIL_EVENTS, net_events
from dashcache.events.publisher import publish_many as default_publish_many
from dashcache.events.types import (
    CategoriesChanged,
    CategoryChange,
    EmailCreated,
    EmailDeleted,
    EmailUpdated,
    Event,
)
from dashcache.logging import get_logger
from dashcache.schema.mapping import SchemaMapping, load_mapping
from dashcache.schema.tables import build_tables
from dashcache.snapshots import current_txid

_PENDING = "dashcache.events"
_FETCHED = "dashcache.old_rows"
_TXID = "dashcache.txid"
_NESTED = "dashcache.nested"
_SAVEPOINTS = "dashcache.savepoints"

log = get_logger(__name__)

Publish = Callable[[list[Event]], object]
SessionFactory = sessionmaker[Session] | type[Session]


def track_mutations(
    session_factory: SessionFactory,
    publish: Publish | None = None,
    mapping: SchemaMapping | None = None,
) -> None:
    """Publish the events of every transaction committed by sessions of `session_factory`.

    `mapping` defaults to the one DASHCACHE_SCHEMA_FILE names (the demo schema without it).
    """
    send = publish or default_publish_many
    classes = MappedClasses(build_tables(mapping or load_mapping(Settings.from_env().schema_file)))

    def before_flush(session: Session, _context: object, _instances: object) -> None:
        pending = session.info.setdefault(_PENDING, [])
        fetched = session.info.setdefault(_FETCHED, {})
        for obj in session.deleted:
            mapped = classes.of(obj)
            if isinstance(mapped, EmailClass):
                email_id, account = (mapped.value(obj, r, old=True) for r in ("id", "account"))
                pending.append(EmailDeleted(account, email_id, mapped.row(obj, old=True)))
            elif mapped is not None:
                category_id = mapped.value(obj, "id", old=True)
                pending.append(CategoriesChanged((category_id,), CategoryChange.DELETED))
        for obj in session.dirty:
            mapped = classes.of(obj)
            if mapped is not None:
                roles = EMAIL_ROLES if isinstance(mapped, EmailClass) else ("name",)
                fetched[id(obj)] = mapped.fetch(session, obj, mapped.unknown_old(obj, roles))

    def after_flush(session: Session, _context: object) -> None:
        pending = session.info.setdefault(_PENDING, [])
        fetched = session.info.pop(_FETCHED, {})
        dirty = sorted((obj for obj in session.dirty if session.is_modified(obj)), key=_identity)
        try:
            pending.extend(_created(classes, session.new))
            pending.extend(_updated(classes, dirty, fetched))
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
            held = len(session.info.get(_PENDING, []))
            session.info.setdefault(_SAVEPOINTS, {})[id(transaction)] = held

    def after_soft_rollback(session: Session, transaction: SessionTransaction) -> None:
        held = session.info.get(_SAVEPOINTS, {}).pop(id(transaction), None)
        if transaction.nested and held is not None:
            del session.info.get(_PENDING, [])[held:]

    def after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is None:
            for name in (_PENDING, _FETCHED, _TXID, _NESTED, _SAVEPOINTS):
                session.info.pop(name, None)

    event.listen(session_factory, "before_flush", before_flush)
    event.listen(session_factory, "after_flush", after_flush)
    event.listen(session_factory, "after_commit", after_commit)
    event.listen(session_factory, "after_transaction_create", after_transaction_create)
    event.listen(session_factory, "after_soft_rollback", after_soft_rollback)
    event.listen(session_factory, "after_transaction_end", after_transaction_end)


def _identity(obj: object) -> tuple[str, tuple[Any, ...]]:
    """Orders updates by class and primary key (the session keeps dirty objects in a set)."""
    state = inspect(obj)
    return type(obj).__name__, tuple(state.identity or ())


def _created(classes: MappedClasses, objects: Iterable[Any]) -> Iterable[Event]:
    categories = []
    for obj in objects:
        mapped = classes.of(obj)
        if isinstance(mapped, EmailClass):
            email_id, account = (mapped.value(obj, role) for role in ("id", "account"))
            yield EmailCreated(account, email_id, mapped.row(obj))
        elif mapped is not None:
            categories.append(mapped.value(obj, "id"))
    if categories:
        yield CategoriesChanged(tuple(categories), CategoryChange.CREATED)


def _updated(
    classes: MappedClasses, objects: Iterable[Any], fetched: dict[int, dict[str, Any]]
) -> Iterable[Event]:
    renamed = []
    for obj in objects:
        mapped: MappedClass | None = classes.of(obj)
        old = fetched.get(id(obj), {})
        if isinstance(mapped, EmailClass):
            email_id, account = mapped.value(obj, "id"), mapped.value(obj, "account")
            before, after = mapped.row(obj, True, old), mapped.row(obj)
            old_account = mapped.value(obj, "account", True, old)
            if old_account != account:
                yield EmailDeleted(old_account, email_id, before)
                yield EmailCreated(account, email_id, after)
            elif before != after:
                yield EmailUpdated(account, email_id, before, after)
        elif mapped is not None and mapped.changed(obj, "name", old):
            renamed.append(mapped.value(obj, "id"))
    if renamed:
        yield CategoriesChanged(tuple(renamed), CategoryChange.RENAMED)
