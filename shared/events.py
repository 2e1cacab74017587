"""Mutation events, the public API: types, publishing, and the SQLAlchemy integration.

    from shared.events import EmailRow, EmailUpdated, publish, track_mutations

    track_mutations(SessionFactory)      # publish every committed Email / Category change
    publish(EmailUpdated(account_id, email_id, before=row, after=changed_row))

`publish` and `publish_many` mark the stale keys in Redis and send recomputes by task name to
the events queue (`shared.publisher`); the keys each event dirties are in `shared.targeting`;
the JSON wire form, for producers in other languages, is in `shared.event_types`.
"""

from shared.event_types import (
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
from shared.publisher import EventPublisher, publish, publish_many
from shared.tracking import track_mutations

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
    "publish",
    "publish_many",
    "track_mutations",
]
