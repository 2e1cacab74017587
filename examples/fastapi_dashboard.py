"""An email app's dashboard route on the asyncio reader (FastAPI on uvicorn).

    DATABASE_URL=postgresql://... REDIS_URL=redis://... \\
        uvicorn examples.fastapi_dashboard:app --port 8000
    curl 'http://127.0.0.1:8000/api/dashboard/stats'              # from the cache
    curl 'http://127.0.0.1:8000/api/dashboard/stats?fresh=true'   # from the database now

Routes get a `DashboardRepository` (the same two methods the app's repository had) from a plain
dependency function, no `Request`: the process's default reader serves whichever event loop
calls it (uvicorn's, a `TestClient`'s new loop per request, a reload's new process), and starts
without the database. The lifespan only releases its connections at shutdown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException

from dashcache.async_reader import DashboardRepository, default_reader
from dashcache.errors import CacheUnavailable, DashboardUnavailable


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    """Release the reader's connections at shutdown (it connects again if used afterwards)."""
    yield
    await default_reader().aclose()


app = FastAPI(lifespan=lifespan)


def dashboard_repository() -> DashboardRepository:
    """The repository of the request (all accounts here; pass the user's account id instead)."""
    return DashboardRepository(default_reader())


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
