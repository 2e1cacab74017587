"""Events arriving as JSON from any producer: validate, publish, or dead-letter.

A bad payload is never retried and never raises out of the worker: it is logged
(`event.rejected`), counted (field `events.rejected` of the counters hash) and kept, with the
reason, at the head of a capped dead-letter list for inspection.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from shared import clock
from shared.errors import InvalidEvent
from shared.event_types import decode_batch
from shared.keys import KeySchema
from shared.logging import get_logger
from shared.publisher import EventPublisher

DEAD_LETTER_CAP = 1000
"""Entries kept in the dead-letter list (newest first)."""

PAYLOAD_CHARS = 4096
"""Characters of a rejected payload kept in its dead-letter entry."""

REJECTED_COUNTER = "events.rejected"

log = get_logger(__name__)


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


def dead_letter(client: redis.Redis, keys: KeySchema, payload: object, error: InvalidEvent) -> None:
    """Log, count and keep one rejected payload (one atomic round trip)."""
    text = json.dumps(payload, default=repr)
    entry: dict[str, Any] = {
        "reason": str(error),
        "field": error.field,
        "rejected_at": clock.now().isoformat(),
        "payload": text[:PAYLOAD_CHARS],
        "truncated": len(text) > PAYLOAD_CHARS,
    }
    pipe = client.pipeline(transaction=True)
    pipe.lpush(keys.dead_letters, json.dumps(entry))
    pipe.ltrim(keys.dead_letters, 0, DEAD_LETTER_CAP - 1)
    pipe.hincrby(keys.counters, REJECTED_COUNTER, 1)
    pipe.execute()
    log.warning(
        "event.rejected", field=error.field, reason=str(error), dead_letter=keys.dead_letters
    )
