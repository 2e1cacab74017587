"""Mutation events, the public API: types, publishing, and the SQLAlchemy integration.

    from dashcache.events import EmailRow, EmailUpdated, publish, track_mutations

    track_mutations(SessionFactory)      # publish every committed Email / Category change
    publish(EmailUpdated(account_id, email_id, before=row, after=changed_row, txid=txid))
    flush()                              # wait until what `publish` queued was sent

An email event with a `txid` updates the cached counts by deltas in Redis at publish time
(`dashcache.events.deltas`, `dashcache.events.apply`); the others mark their stale keys and send
recomputes by task name to the events queue (`dashcache.events.publisher`). The keys each event
dirties are in `dashcache.events.targeting`; the JSON wire form, for producers in other languages,
is in `dashcache.events.types`.
"""

from dashcache.events.publisher import EventPublisher, flush, publish, publish_many
from dashcache.events.tracking import track_mutations
from dashcache.events.types import (
    CategoriesChanged,
    CategoryChange,
    EmailCreated,
    EmailDeleted,
    EmailRow,
    EmailUpdated,
    Event,
    decode_batch,
    decode_event,
    encode_event,
)

__all__ = [
    "CategoriesChanged",
    "CategoryChange",
    "EmailCreated",
    "EmailDeleted",
    "EmailRow",
    "EmailUpdated",
    "Event",
    "EventPublisher",
    "decode_batch",
    "decode_event",
    "encode_event",
    "flush",
    "publish",
    "publish_many",
    "track_mutations",
]
