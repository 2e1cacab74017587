"""Email events as deltas: pure, no I/O.

The email events of a batch with one `txid` and one email are netted into that email's change
in the transaction (`netting.net_change`, in any order; refused when they do not chain). That
change becomes one delta entry per affected scope (its account's and `all`), identified by
`txid:email_id`; applying it subtracts the `before` row and adds the `after` row
(shared/maintained.py has the entry format and the Lua that applies it). Category events and
email events without a txid are recomputed from the table, as before.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from dashcache.errors import InvalidEvent
from dashcache.events.netting import EMAIL_EVENTS, EmailEvent, NetChange, Place, net_change
from dashcache.events.types import EmailRow, Event
from dashcache.keys import ALL_SCOPE, scope_token
from dashcache.maintained import micros


@dataclass(slots=True)
class Split:
    """A batch of events parted into deltas per scope token and events to recompute; `refused`
    holds the events of a (txid, email) that could not be netted, with why."""

    deltas: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    recompute: list[Event] = field(default_factory=list)
    delta_events: int = 0
    refused: list[tuple[InvalidEvent, list[EmailEvent]]] = field(default_factory=list)


def row_text(row: EmailRow | None) -> str:
    """One row of an entry: `category,unread,auto_labeled,created_at_us` ('' for no row)."""
    if row is None:
        return ""
    category = "" if row.category_id is None else str(row.category_id)
    return f"{category},{int(row.is_unread)},{int(row.is_auto_labeled)},{micros(row.created_at)}"


def split(events: Iterable[Event]) -> Split:
    """Part a batch: one delta per scope for each email's net change in a transaction (its
    events with that txid netted, in any order; a change of no counted field is dropped), the
    rest to recompute. Events of a (txid, email) that do not chain go to `refused`."""
    parted = Split()
    groups: dict[tuple[int, int], list[tuple[int, EmailEvent]]] = {}
    for n, event in enumerate(events):
        if not isinstance(event, EMAIL_EVENTS) or event.txid is None:
            parted.recompute.append(event)
            continue
        parted.delta_events += 1
        groups.setdefault((event.txid, event.email_id), []).append((n, event))
    for (txid, email_id), changes in groups.items():
        try:
            net = net_change(txid, email_id, changes)
        except InvalidEvent as error:
            parted.refused.append((error, [event for _, event in changes]))
            continue
        for token, entry in entries_of(net):
            parted.deltas.setdefault(token, []).append(entry)
    return parted


def entries_of(net: NetChange) -> list[tuple[str, tuple[str, str]]]:
    """(scope token, (identity, `txid|before|after`)) of each scope a net change moves: its
    account before, its account after, and `all` (one scope when single-tenant)."""
    places = [place for place in (net.before, net.after) if place is not None]
    tokens = dict.fromkeys([*(scope_token(account) for account, _ in places), ALL_SCOPE])
    identity = f"{net.txid}:{net.email_id}"
    found = []
    for token in tokens:
        before, after = (_row_in(place, token) for place in (net.before, net.after))
        if before != after:
            found.append((token, (identity, f"{net.txid}|{row_text(before)}|{row_text(after)}")))
    return found


def _row_in(place: Place | None, token: str) -> EmailRow | None:
    """The row of a place as a scope sees it: the email's row if it is in that scope."""
    if place is None:
        return None
    account, row = place
    return row if token in (ALL_SCOPE, scope_token(account)) else None
