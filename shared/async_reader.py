"""The asyncio reader, for event-loop hosts such as FastAPI (see shared/reader/async_reader.py).

reader = AsyncDashboardReader.from_env()        # at import, in a lifespan; serves any event loop
v = await reader.get_aggregates(account_id=None)
repository = DashboardRepository(reader)         # the app's repository, as a drop-in
repository = DashboardRepository(default_reader())   # the process's reader, from a plain function
await reader.aclose()
"""

from dashcache.reader.async_reader import AsyncDashboardReader
from dashcache.reader.repository import DashboardRepository, default_reader
from dashcache.reader.rules import DashboardValue

__all__ = ["AsyncDashboardReader", "DashboardRepository", "DashboardValue", "default_reader"]
