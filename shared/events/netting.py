"""One transaction's email events netted to one event per email, carrying its txid (pure)."""

from __future__ import annotations

from dashcache.events.types import EmailCreated, EmailDeleted, EmailUpdated, Event

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
