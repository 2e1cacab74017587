"""The email app's repository on the asyncio reader: the same two methods, the same shapes; and
the process's default reader, for a plain dependency function that gets no `Request`:

    def dashboard_repository() -> DashboardRepository:   # FastAPI: Depends(dashboard_repository)
        return DashboardRepository(default_reader())
"""

from __future__ import annotations

import threading
from typing import Any

from dashcache.keys import Scope, check_account_id
from dashcache.reader.async_reader import AsyncDashboardReader


class DashboardRepository:
    """A drop-in for the email app's repository: the dashboard of one scope, in the shapes its
    routes consume. `account_id=None` is every account."""

    def __init__(self, reader: AsyncDashboardReader, account_id: Scope = None) -> None:
        self.reader = reader
        self.account_id = check_account_id(account_id)

    async def get_dashboard_aggregates(self, *, fresh: bool = False) -> dict[str, Any]:
        """The aggregates object: total_emails, auto_labeled, categories_count, unread_count,
        weekly_growth."""
        return (await self.reader.get_aggregates(self.account_id, fresh=fresh)).data

    async def get_category_breakdown(
        self, limit: int = 10, *, fresh: bool = False
    ) -> dict[str, int]:
        """Category name -> email count, count desc then name, at most `limit` entries."""
        value = await self.reader.get_category_breakdown(limit, self.account_id, fresh=fresh)
        return value.data


_default: AsyncDashboardReader | None = None
_default_lock = threading.Lock()


def default_reader() -> AsyncDashboardReader:
    """This process's asyncio reader, configured from the environment on first use (connecting
    to nothing then). It serves every event loop that calls it; `await default_reader().aclose()`
    at shutdown releases its connections, and it connects again if it is used afterwards."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = AsyncDashboardReader.from_env()
    return _default
