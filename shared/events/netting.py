"""One transaction's email events netted to one change per email, carrying its txid (pure).

`net_events` nets what `track_mutations` collected, in the order it happened. `net_change` nets
what a producer published for one (txid, email), in whatever order the events come, and refuses
events that are not the changes of one transaction (they do not chain).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from dashcache.errors import InvalidEvent
from dashcache.events.types import EmailCreated, EmailDeleted, EmailRow, EmailUpdated, Event

EMAIL_EVENTS = (EmailCreated, EmailUpdated, EmailDeleted)
EmailEvent = EmailCreated | EmailUpdated | EmailDeleted


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


Place = tuple[int | None, EmailRow]
"""Where an email is: its account (None single-tenant) and its counted fields."""


@dataclass(frozen=True, slots=True)
class NetChange:
    """One transaction's net change of one email: its place before and after (None: no row)."""

    txid: int
    email_id: int
    before: Place | None
    after: Place | None


def net_change(txid: int, email_id: int, changes: Sequence[tuple[int, EmailEvent]]) -> NetChange:
    """The net change of one email's events in one transaction, whatever order they come in.

    `changes` are (position in the batch, event). The events must chain, as the changes of one
    transaction do: each `before` is another's `after` (an `EmailCreated` has no before, an
    `EmailDeleted` no after), one start and one end, or a loop (nothing changed). Otherwise
    `InvalidEvent` names the first event's position and says why.
    """
    edges = [(_before(event), _after(event)) for _, event in changes]
    balance: Counter[Place | None] = Counter()
    roots: dict[Place | None, Place | None] = {}
    for before, after in edges:
        balance[before] += 1
        balance[after] -= 1
        _join(roots, before, after)
    starts = [place for place, n in balance.items() if n == 1]
    ends = [place for place, n in balance.items() if n == -1]
    problem = None
    if any(abs(n) > 1 for n in balance.values()):
        problem = "two of them start from the same row (or from none), or end in the same one"
    elif len(starts) > 1 or len({_root(roots, place) for place in balance}) > 1:
        problem = "one's before (its account and row) is no other's after"
    if problem is not None:
        where = ", ".join(f"events[{n}]" for n, _ in changes)
        kinds = ", ".join(type(event).__name__ for _, event in changes)
        raise InvalidEvent(
            f"{where} ({kinds}) of email {email_id} in transaction {txid} cannot be netted into "
            f"one change: {problem}. One transaction's events of an email must chain (each "
            "before is another's after; created has no before, deleted no after), in any order",
            field=f"events[{changes[0][0]}]",
        )
    if not starts:  # a loop: the email ends as it began
        return NetChange(txid, email_id, None, None)
    return NetChange(txid, email_id, starts[0], ends[0])


def _before(event: EmailEvent) -> Place | None:
    return None if isinstance(event, EmailCreated) else (event.account_id, event.before)


def _after(event: EmailEvent) -> Place | None:
    return None if isinstance(event, EmailDeleted) else (event.account_id, event.after)


def _root(roots: dict[Place | None, Place | None], place: Place | None) -> Place | None:
    while roots.setdefault(place, place) != place:
        place = roots[place]
    return place


def _join(roots: dict[Place | None, Place | None], a: Place | None, b: Place | None) -> None:
    roots[_root(roots, a)] = _root(roots, b)
