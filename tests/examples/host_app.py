"""A host app's own dashboard code, as its integrator writes it: the route calls the app's
repository, and a module-level factory dependency (no `Request`) keeps one `DashboardRepository`
as a module singleton, built from the environment on first use."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException

from dashcache.async_reader import AsyncDashboardReader, DashboardRepository
from dashcache.errors import CacheUnavailable, DashboardUnavailable

_repository: DashboardRepository | None = None


def get_dashboard_repository() -> DashboardRepository:
    """The app's repository factory: one per process, made on the first request."""
    global _repository
    if _repository is None:
        _repository = DashboardRepository(AsyncDashboardReader.from_env())
    return _repository


def forget_repository() -> DashboardRepository | None:
    """The singleton, if made, and forget it (a test closes its reader)."""
    global _repository
    repository, _repository = _repository, None
    return repository


app = FastAPI()


@app.get("/api/dashboard/stats")
async def dashboard_stats(
    repository: Annotated[DashboardRepository, Depends(get_dashboard_repository)],
    fresh: bool = False,
    limit: int = 10,
) -> dict[str, Any]:
    """The app's route: aggregates and the category breakdown; 503 when none can be served."""
    try:
        return {
            "aggregates": await repository.get_dashboard_aggregates(fresh=fresh),
            "category_breakdown": await repository.get_category_breakdown(limit, fresh=fresh),
        }
    except (DashboardUnavailable, CacheUnavailable) as error:
        raise HTTPException(status_code=503, detail=str(error)) from error
