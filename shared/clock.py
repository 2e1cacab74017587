"""The one place dashcache reads the wall clock, so tests can control time."""

import time
from datetime import UTC, datetime


def now() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def timestamp() -> float:
    """The current time as seconds since the epoch (cheaper than `now` on a hot path)."""
    return time.time()
