"""Events arriving as JSON from any producer: validate, publish, or dead-letter.

A bad payload is never retried and never raises out of the worker: it is logged
(`event.rejected`), counted and kept, with the reason, in the dead-letter list
(shared/events/deadletter.py).
"""

from __future__ import annotations

from dashcache.errors import InvalidEvent
from dashcache.events.deadletter import dead_letter
from dashcache.events.publisher import EventPublisher
from dashcache.events.types import decode_batch
from dashcache.keys import KeySchema


def ingest(payload: object, publisher: EventPublisher) -> int:
    """Publish a wire-form batch; return the events accepted (0 when the batch was rejected)."""
    try:
        events = decode_batch(payload, publisher.settings.event_max_batch)
        publisher.publish_many(events)
    except InvalidEvent as error:
        dead_letter(publisher.client, KeySchema(publisher.settings.key_prefix), payload, error)
        publisher.metrics.record_event("dead_lettered")
        return 0
    return len(events)
