"""Helpers of the WAL source's tests: demo rows, a consumer in a thread, the database's truth."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import redis
from sqlalchemy import Engine, text

from dashcache.cdc.runner import Consumer
from dashcache.config import Settings
from dashcache.keys import KeySchema, Kind, Scope
from dashcache.recompute import recompute_every_scope
from dashcache.store import RedisStore, make_redis
from tests.eventing import Settled, envelope, settled
from tests.helpers import (
    WAIT_SECONDS,
    Row,
    add_categories,
    add_emails,
    captured_events,
    wait_until,
)

BOTH = (Kind.AGGREGATES, Kind.BREAKDOWN)


def seed(engine: Engine, accounts: int = 3, per_account: int = 20) -> None:
    """Four categories and `per_account` emails in each account, created over the last 20 days."""
    add_categories(engine, ["Work", "Personal", "Promotions", "Updates"])
    now = datetime.now(UTC)
    add_emails(
        engine,
        [
            Row(a, (n % 5) or None, n % 3 == 0, n % 4 == 0, now - timedelta(days=n % 20, hours=1))
            for a in range(1, accounts + 1)
            for n in range(per_account)
        ],
    )


def warm(settings: Settings) -> int:
    """Compute and store every scope now, the way a scheduled pass does; its generation."""
    from dashcache.schema.check import engine_for

    engine = engine_for(settings)
    client = make_redis(settings.redis_url, 5.0)
    store = RedisStore(client, KeySchema(settings.key_prefix), settings.ttl_seconds)
    try:
        return recompute_every_scope(engine, store, settings.max_breakdown).generation
    finally:
        client.close()
        engine.dispose()


def scopes(engine: Engine) -> list[Scope]:
    """All accounts and every account that has emails."""
    with engine.connect() as conn:
        found = conn.execute(text("SELECT DISTINCT account_id FROM emails ORDER BY 1")).scalars()
        return [None, *found]


def exact(client: redis.Redis, settings: Settings, engine: Engine, among: list[Scope]) -> Settled:
    """Every value of the scopes `among` equals a fresh count of the database."""
    return settled(client, settings, engine, [(kind, s) for s in among for kind in BOTH])


def wait_exact(
    client: redis.Redis, settings: Settings, engine: Engine, timeout: float = WAIT_SECONDS
) -> None:
    """Wait until every value equals a fresh count; fail naming the first wrong key."""
    wait_until(lambda: exact(client, settings, engine, scopes(engine)), "exact values", timeout)


def generations(client: redis.Redis, settings: Settings, among: list[Scope]) -> set[int]:
    """The generations of the stored values of the scopes `among` (a recompute raises them)."""
    return {envelope(client, settings, kind, s)["generation"] for s in among for kind in BOTH}


@contextmanager
def consuming(settings: Settings) -> Iterator[list[dict[str, object]]]:
    """`cdc run` in a thread of this process until the block ends; yields its logged events
    once it logged `cdc.ready`."""
    stop = threading.Event()
    with captured_events() as logs:
        failure: list[BaseException] = []

        def run() -> None:
            try:
                Consumer(settings, stop).run()
            except BaseException as error:  # the test reports it
                failure.append(error)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        try:
            wait_until(lambda: failure or any(e["event"] == "cdc.ready" for e in logs), "cdc.ready")
            assert not failure, failure
            yield logs
        finally:
            stop.set()
            thread.join(timeout=30)
        assert not failure, failure


def sql(engine: Engine, *statements: str) -> None:
    """Run statements in one transaction."""
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
