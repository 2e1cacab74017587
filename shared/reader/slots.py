"""A per-process limit on reader computations running against the database at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from dashcache.errors import DashboardUnavailable


class ComputeSlots:
    """At most `limit` computations at a time; a caller waits for a slot until its deadline."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._semaphore = threading.BoundedSemaphore(limit)

    @contextmanager
    def hold(self, deadline: float) -> Iterator[None]:
        """Hold a slot for the block; raise `DashboardUnavailable` if none frees up in time."""
        if not self._semaphore.acquire(timeout=max(deadline - time.monotonic(), 0.0)):
            raise DashboardUnavailable(
                f"{self.limit} dashboard computations are already running in this process "
                "(DASHCACHE_COMPUTE_LIMIT) and none finished in time; retry shortly"
            )
        try:
            yield
        finally:
            self._semaphore.release()
