"""The FastAPI example in the web benchmark's three modes, chosen by DASHCACHE_BENCH_MODE:

- `async`: as shipped (the asyncio reader);
- `sync`: the sync `DashboardReader` called straight from the coroutine (it blocks the loop for
  every Redis round trip, which is what the asyncio reader replaces);
- `live`: no cache, each repository call computes the scope from the database in a thread
  (the best an uncached app does without blocking its loop).

    DASHCACHE_BENCH_MODE=sync uvicorn dashcache.bench.async_web_app:app --workers 2
"""

from __future__ import annotations

import asyncio
import os
from functools import cache
from typing import Any

from dashcache import clock
from dashcache.config import Settings
from dashcache.db import make_engine
from dashcache.reader import DashboardReader
from dashcache.recompute import snapshot
from dashcache.stats import ScopeStats, compute_scope
from examples.fastapi_dashboard import app, dashboard_repository

MODE = os.environ.get("DASHCACHE_BENCH_MODE", "async")


@cache
def _settings() -> Settings:
    return Settings.from_env()


@cache
def _sync_reader() -> DashboardReader:
    return DashboardReader.from_env()


class SyncReaderRepository:
    """The repository's methods on the sync reader, called from the coroutine."""

    async def get_dashboard_aggregates(self, *, fresh: bool = False) -> dict[str, Any]:
        return _sync_reader().get_aggregates(fresh=fresh).data

    async def get_category_breakdown(self, limit: int = 10, *, fresh: bool = False) -> Any:
        return _sync_reader().get_category_breakdown(limit, fresh=fresh).data


class LiveRepository:
    """The repository's methods computed from the database on every call, in a thread."""

    async def get_dashboard_aggregates(self, *, fresh: bool = False) -> dict[str, Any]:
        return (await asyncio.to_thread(_live)).aggregates

    async def get_category_breakdown(self, limit: int = 10, *, fresh: bool = False) -> Any:
        return dict((await asyncio.to_thread(_live)).breakdown[:limit])


@cache
def _engine() -> Any:
    return make_engine(_settings().database_url)


def _live() -> ScopeStats:
    with snapshot(_engine()) as session:
        return compute_scope(session, None, clock.now(), _settings().max_breakdown)


if MODE == "sync":
    app.dependency_overrides[dashboard_repository] = SyncReaderRepository
elif MODE == "live":
    app.dependency_overrides[dashboard_repository] = LiveRepository

__all__ = ["app"]
