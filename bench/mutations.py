"""The mutation stream of the mixed load: new emails, emails read, emails relabelled.

A batch of mutations commits in one transaction (one for a web request, more for a bulk action
or an import). New emails arrive already
read, so `total_emails - unread_count` of the all-accounts scope grows by exactly one with every
insert and every mark-read, and by nothing else: a value's progress counter says which prefix
of the stream it reflects (see `dashcache.bench.staleness`).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Engine, bindparam, insert, select, text, update

from dashcache.events.types import EmailCreated, EmailRow, EmailUpdated, Event
from dashcache.models import Email
from dashcache.snapshots import current_txid

INSERT_SHARE = 0.5
MARK_READ_SHARE = 0.4


class Change(StrEnum):
    """What a mutation does."""

    INSERT = "insert"
    MARK_READ = "mark_read"
    RELABEL = "relabel"


@dataclass(frozen=True, slots=True)
class Existing:
    """An email already in the table, as read before the load starts."""

    email_id: int
    account_id: int
    fields: EmailRow


@dataclass(frozen=True, slots=True)
class Mutation:
    """One committed change; `before` is None for an insert."""

    change: Change
    account_id: int
    email_id: int
    before: EmailRow | None
    after: EmailRow
    txid: int | None = None
    """Its transaction's id, once committed on PostgreSQL (what `track_mutations` fills in)."""

    def event(self) -> Event:
        """The mutation event a web process publishes after committing it."""
        if self.before is None:
            return EmailCreated(self.account_id, self.email_id, self.after, txid=self.txid)
        return EmailUpdated(self.account_id, self.email_id, self.before, self.after, txid=self.txid)

    @property
    def moves_progress(self) -> bool:
        """Whether it adds one to `total_emails - unread_count`."""
        return self.change is not Change.RELABEL


def unread_pool(engine: Engine, size: int) -> list[Existing]:
    """`size` unread emails picked at random; each is mutated at most once."""
    query = (
        select(
            Email.id,
            Email.account_id,
            Email.category_id,
            Email.is_auto_labeled,
            Email.created_at,
        )
        .where(Email.is_unread.is_(True))
        .order_by(text("random()"))
        .limit(size)
    )
    with engine.connect() as conn:
        return [
            Existing(row[0], row[1], EmailRow(row[2], True, row[3], row[4]))
            for row in conn.execute(query)
        ]


def plan(
    rng: random.Random,
    count: int,
    pool: Sequence[Existing],
    categories: Sequence[int],
    now: datetime,
) -> Iterator[Mutation]:
    """`count` mutations; updates use up pooled emails, inserts only once the pool is spent.

    Inserts go to the account of a random pooled email, so they follow the accounts' sizes.
    """
    unused = iter(pool)
    for _ in range(count):
        draw = rng.random()
        existing = next(unused, None) if draw >= INSERT_SHARE else None
        if existing is None:
            account = rng.choice(pool).account_id
            after = EmailRow(rng.choice(categories), False, rng.random() < 0.6, now)
            yield Mutation(Change.INSERT, account, 0, None, after)
        elif draw < INSERT_SHARE + MARK_READ_SHARE:
            after = replace(existing.fields, is_unread=False)
            yield Mutation(
                Change.MARK_READ, existing.account_id, existing.email_id, existing.fields, after
            )
        else:
            others = [c for c in categories if c != existing.fields.category_id]
            after = replace(existing.fields, category_id=rng.choice(others))
            yield Mutation(
                Change.RELABEL, existing.account_id, existing.email_id, existing.fields, after
            )


def apply(engine: Engine, batch: Sequence[Mutation]) -> list[Mutation]:
    """Commit a batch in one transaction; return it, in order, with the ids of inserted emails."""
    inserts = [m for m in batch if m.change is Change.INSERT]
    updates = [m for m in batch if m.change is not Change.INSERT]
    with engine.begin() as conn:
        ids: list[int] = []
        if inserts:
            rows = [
                {
                    "message_id": f"bench-{uuid.uuid4().hex}@dashcache.invalid",
                    "account_id": m.account_id,
                    "category_id": m.after.category_id,
                    "is_unread": m.after.is_unread,
                    "is_auto_labeled": m.after.is_auto_labeled,
                    "created_at": m.after.created_at,
                    "updated_at": m.after.created_at,
                }
                for m in inserts
            ]
            query = insert(Email).returning(Email.id, sort_by_parameter_order=True)
            ids = [int(email_id) for email_id in conn.scalars(query, rows)]
        if updates:
            conn.execute(_UPDATE, [_update_params(m) for m in updates])
        txid = current_txid(conn)
    inserted = iter(ids)
    return [
        replace(m, email_id=next(inserted), txid=txid)
        if m.change is Change.INSERT
        else replace(m, txid=txid)
        for m in batch
    ]


_UPDATE = (
    update(Email)
    .where(Email.id == bindparam("target"))
    .values(is_unread=bindparam("unread"), category_id=bindparam("category"))
)


def _update_params(mutation: Mutation) -> dict[str, object]:
    after = mutation.after
    return {"target": mutation.email_id, "unread": after.is_unread, "category": after.category_id}
