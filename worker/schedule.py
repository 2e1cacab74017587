"""Beat's schedule: recompute every scope each refresh period."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from shared.config import Settings
from shared.dispatch import WARM_ALL


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """One entry; a run not started within one period is dropped, the next one replaces it."""
    period = settings.refresh_seconds
    return {
        "warm-every-scope": {
            "task": WARM_ALL,
            "schedule": timedelta(seconds=period),
            "options": {"queue": settings.schedule_queue, "expires": period},
        }
    }
