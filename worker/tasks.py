"""Celery tasks: thin wrappers over `shared.recompute`, each logging one line per run."""

from __future__ import annotations

import time
from collections.abc import Callable

from redis import RedisError
from sqlalchemy.exc import SQLAlchemyError

from shared.dispatch import WARM_ALL, WARM_SCOPE
from shared.keys import Scope, check_account_id, scope_token
from shared.logging import get_logger
from shared.recompute import RecomputeResult, recompute_every_scope, recompute_scope
from worker.app import app
from worker.runtime import runtime

log = get_logger(__name__)

RETRY = {
    "autoretry_for": (SQLAlchemyError, RedisError),
    "retry_backoff": 2,
    "retry_backoff_max": 30,
    "retry_jitter": True,
    "max_retries": 3,
}


@app.task(name=WARM_ALL, **RETRY)
def warm_all() -> int:
    """Recompute every scope in one pass; returns the number of values written."""
    rt = runtime()
    result = _logged(
        "all", lambda: recompute_every_scope(rt.engine, rt.store, rt.settings.max_breakdown)
    )
    return result.written


@app.task(name=WARM_SCOPE, **RETRY)
def warm_scope(account_id: Scope) -> int:
    """Recompute one scope (an account, or None for all accounts)."""
    account_id = check_account_id(account_id)
    rt = runtime()
    result = _logged(
        scope_token(account_id),
        lambda: recompute_scope(rt.engine, rt.store, account_id, rt.settings.max_breakdown),
    )
    return result.written


def _logged(scope: str, run: Callable[[], RecomputeResult]) -> RecomputeResult:
    started = time.perf_counter()
    try:
        result = run()
    except Exception as error:
        duration_ms = round((time.perf_counter() - started) * 1000, 1)
        log.warning(
            "recompute.failed",
            scope=scope,
            duration_ms=duration_ms,
            outcome="error",
            error=f"{type(error).__name__}: {error}",
        )
        raise
    log.info(
        "recompute.finished",
        scope=scope,
        duration_ms=round((time.perf_counter() - started) * 1000, 1),
        outcome="written" if result.fenced == 0 else "fenced",
        generation=result.generation,
        scopes=len(result.stats),
        written=result.written,
        fenced=result.fenced,
    )
    return result
