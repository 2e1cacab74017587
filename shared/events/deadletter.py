"""The dead-letter list: what the event path refused, kept with the reason for inspection.

Anything refused (a bad payload, a dirty-set member that is no scope token, an account whose
recompute kept failing) is logged once (`event.rejected`, or the caller's own event name),
counted (field `events.rejected` of the counters hash) and kept at the head of a capped list.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from dashcache import clock
from dashcache.errors import InvalidEvent
from dashcache.keys import KeySchema
from dashcache.logging import get_logger

DEAD_LETTER_CAP = 1000
"""Entries kept in the dead-letter list (newest first)."""

PAYLOAD_CHARS = 4096
"""Characters of a rejected payload kept in its dead-letter entry."""

REJECTED_COUNTER = "events.rejected"

log = get_logger(__name__)


def dead_letter(
    client: redis.Redis,
    keys: KeySchema,
    payload: object,
    error: InvalidEvent,
    log_event: str = "event.rejected",
    **context: Any,
) -> None:
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
        log_event,
        field=error.field,
        reason=str(error),
        dead_letter=keys.dead_letters,
        **context,
    )
