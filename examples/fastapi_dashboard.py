"""An email app's dashboard route on the asyncio reader (FastAPI on uvicorn).

    DATABASE_URL=postgresql://... REDIS_URL=redis://... \\
        uvicorn examples.fastapi_dashboard:app --port 8000
    curl 'http://127.0.0.1:8000/api/dashboard/stats'              # from the cache
    curl 'http://127.0.0.1:8000/api/dashboard/stats?fresh=true'   # from the database now

The reader is created and closed by the lifespan, one per worker process; routes get a
`DashboardRepository` through a dependency, the same two methods the app's repository had.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request

from dashcache.async_reader import AsyncDashboardReader, DashboardRepository
from dashcache.errors import CacheUnavailable, DashboardUnavailable


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """One reader per worker process, closed at shutdown."""
    async with AsyncDashboardReader.from_env() as reader:
        app.state.dashboard_reader = reader
        yield


app = FastAPI(lifespan=lifespan)


def dashboard_repository(request: Request) -> DashboardRepository:
    """The repository of the request (all accounts here; pass the user's account id instead)."""
    return DashboardRepository(request.app.state.dashboard_reader)


Repository = Annotated[DashboardRepository, Depends(dashboard_repository)]


@app.get("/api/dashboard/stats")
async def dashboard_stats(repository: Repository, fresh: bool = False) -> dict[str, Any]:
    """Aggregates and the top categories; `fresh=true` computes them from the database now."""
    try:
        return {
            "aggregates": await repository.get_dashboard_aggregates(fresh=fresh),
            "category_breakdown": await repository.get_category_breakdown(10, fresh=fresh),
        }
    except (DashboardUnavailable, CacheUnavailable) as error:
        raise HTTPException(status_code=503, detail=str(error)) from error
