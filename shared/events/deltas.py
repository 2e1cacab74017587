"""Email events as deltas: pure, no I/O.

An email event with a `txid` becomes one delta entry per affected scope (its account's and
`all`), identified by `txid:email_id`; applying it subtracts the `before` row and adds the
`after` row (shared/maintained.py has the entry format and the Lua that applies it). Category
events and email events without a txid are recomputed from the table, as before.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from dashcache.events.types import EmailCreated, EmailDeleted, EmailRow, EmailUpdated, Event
from dashcache.keys import ALL_SCOPE, scope_token
from dashcache.maintained import micros


@dataclass(slots=True)
class Split:
    """A batch of events parted into deltas per scope token and events to recompute."""

    deltas: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    recompute: list[Event] = field(default_factory=list)
    delta_events: int = 0


def row_text(row: EmailRow | None) -> str:
    """One row of an entry: `category,unread,auto_labeled,created_at_us` ('' for no row)."""
    if row is None:
        return ""
    category = "" if row.category_id is None else str(row.category_id)
    return f"{category},{int(row.is_unread)},{int(row.is_auto_labeled)},{micros(row.created_at)}"


def entry_of(event: EmailCreated | EmailUpdated | EmailDeleted) -> tuple[str, str]:
    """(identity, `txid|before|after`) of an email event with a txid; Lua adds the log seq."""
    before = None if isinstance(event, EmailCreated) else event.before
    after = None if isinstance(event, EmailDeleted) else event.after
    return f"{event.txid}:{event.email_id}", f"{event.txid}|{row_text(before)}|{row_text(after)}"


def split(events: Iterable[Event]) -> Split:
    """Part a batch: deltas for email events with a txid (an update that changes no counted
    field is dropped), the rest to recompute."""
    parted = Split()
    for event in events:
        if not isinstance(event, EmailCreated | EmailUpdated | EmailDeleted) or event.txid is None:
            parted.recompute.append(event)
            continue
        parted.delta_events += 1
        if isinstance(event, EmailUpdated) and event.before == event.after:
            continue
        entry = entry_of(event)
        for token in dict.fromkeys(
            (scope_token(event.account_id), ALL_SCOPE)
        ):  # single-tenant: one
            parted.deltas.setdefault(token, []).append(entry)
    return parted
