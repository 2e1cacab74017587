"""Reading dashboards: Redis first, the database only when needed (see `sync_reader`).

The mechanisms only readers use live beside it: single flight, compute slots, the background
refresh, the Redis circuit breaker and its health probe, and the outage log throttle.
"""

from dashcache.reader.sync_reader import DashboardReader, DashboardValue

__all__ = ["DashboardReader", "DashboardValue"]
