"""Readers start without the database: built while PostgreSQL is unreachable they serve what
Redis holds; the schema mapping is checked when the database is first needed, and again after a
failed check, so a mapping that does not fit is still named by its key; and a reader made before
a fork reads in the child."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine

from dashcache.async_reader import AsyncDashboardReader
from dashcache.config import Settings
from dashcache.errors import DashboardUnavailable, SchemaError
from dashcache.keys import KeySchema, Kind
from dashcache.reader import DashboardReader
from dashcache.recompute import recompute_every_scope
from dashcache.schema.check import engine_for
from dashcache.store import RedisStore
from tests.mapped_schemas import MULTI, AppSchema, app_schema, random_emails
from tests.servers import TcpProxy

CATEGORIES = ["Work", "News", "Travel"]
UNCHECKED = "cannot check the schema mapping, the database failed"


@pytest.fixture
def app(pg: Engine, tmp_path: Path) -> Iterator[AppSchema]:
    """A multi-tenant mapped schema (boolean and `when = "false"` flags), 90 emails, 3 accounts."""
    with app_schema(pg, MULTI, tmp_path, CATEGORIES) as schema:
        schema.add(random_emails(90, 1, 3, len(CATEGORIES)))
        yield schema


@pytest.fixture
def proxy(pg_url: str) -> Iterator[TcpProxy]:
    """A proxy in front of the test PostgreSQL that the test cuts and restores."""
    proxy = TcpProxy.of_database(pg_url)
    yield proxy
    proxy.cut()


@pytest.fixture
def store(settings: Settings, app: AppSchema, redis_client: redis.Redis) -> RedisStore:
    """The test's store, every scope of the mapped schema warmed."""
    store = RedisStore(redis_client, KeySchema(settings.key_prefix), settings.ttl_seconds)
    engine = engine_for(replace(settings, schema_file=app.mapping_file))
    recompute_every_scope(engine, store, settings.max_breakdown)
    engine.dispose()
    return store


def proxied(settings: Settings, proxy: TcpProxy, mapping_file: str) -> Settings:
    return replace(
        settings,
        database_url=proxy.database_url(settings.database_url),
        schema_file=mapping_file,
        db_timeout_seconds=2.0,
    )


def forget(store: RedisStore, account_id: int) -> None:
    store.client.delete(*(store.keys.value(kind, account_id) for kind in Kind))


def test_sync_reader_built_while_the_database_is_down(
    settings: Settings, app: AppSchema, proxy: TcpProxy, store: RedisStore
) -> None:
    """Hits are served; a miss and a fresh read raise `DashboardUnavailable`; once the database
    is back the same miss falls back to the true numbers."""
    proxy.cut()
    reader = DashboardReader.from_settings(proxied(settings, proxy, app.mapping_file))
    try:
        for scope in app.scopes():
            value = reader.get_aggregates(account_id=scope)
            assert value.source == "cache"
            assert value.data == app.truth(scope, value.computed_at)[0], scope
        forget(store, 2)
        with pytest.raises(DashboardUnavailable, match=UNCHECKED):
            reader.get_aggregates(account_id=2)
        with pytest.raises(DashboardUnavailable, match=UNCHECKED):
            reader.get_category_breakdown(account_id=1, fresh=True)
        proxy.restore()
        value = reader.get_aggregates(account_id=2)
        assert value.source == "fallback"
        assert value.data == app.truth(2, value.computed_at)[0]
        fresh = reader.get_aggregates(account_id=1, fresh=True)
        assert fresh.data == app.truth(1, fresh.computed_at)[0]
    finally:
        reader.close()


def test_a_mapping_that_does_not_fit_is_named_at_the_first_database_use(
    settings: Settings, app: AppSchema, proxy: TcpProxy, store: RedisStore, tmp_path: Path
) -> None:
    """Database down: the check cannot run (`DashboardUnavailable`), hits are served. Database
    back: the check runs and `SchemaError` names the key, for both readers."""
    text = Path(app.mapping_file).read_text(encoding="utf-8")
    bad_file = tmp_path / "bad.toml"
    bad_file.write_text(text.replace('"is_unread"', '"was_unread"'), encoding="utf-8")
    bad = proxied(settings, proxy, str(bad_file))
    named = r'emails\.unread: column "was_unread" not found in table "mail\.messages"'
    forget(store, 3)
    proxy.cut()
    reader = DashboardReader.from_settings(bad)
    try:
        assert reader.get_aggregates(account_id=1).source == "cache"
        with pytest.raises(DashboardUnavailable, match=UNCHECKED):
            reader.get_aggregates(account_id=3)
        proxy.restore()
        with pytest.raises(SchemaError, match=named):
            reader.get_aggregates(account_id=3)
        assert reader.get_aggregates(account_id=1).source == "cache"
    finally:
        reader.close()

    async def read_async() -> None:
        async with AsyncDashboardReader.from_settings(bad) as async_reader:
            assert (await async_reader.get_aggregates(account_id=1)).source == "cache"
            with pytest.raises(SchemaError, match=named):
                await async_reader.get_aggregates(account_id=3)

    asyncio.run(read_async())


def test_a_reader_made_before_a_fork_reads_in_the_child(
    settings: Settings, app: AppSchema, store: RedisStore
) -> None:
    """A sync reader made (and used for a hit) before `fork` serves the child: a hit, and a miss
    whose fallback runs the mapping check there; the parent's reads go on after."""
    reader = DashboardReader.from_settings(replace(settings, schema_file=app.mapping_file))
    try:
        assert reader.get_aggregates(account_id=1).source == "cache"
        forget(store, 2)
        pid = os.fork()
        if pid == 0:
            try:
                hit = reader.get_aggregates(account_id=1)
                miss = reader.get_aggregates(account_id=2)
                fits = miss.data == app.truth(2, miss.computed_at)[0]
                os._exit(0 if (hit.source, miss.source, fits) == ("cache", "fallback", True) else 1)
            except BaseException:
                os._exit(2)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, "the child's hit or fallback failed"
        assert reader.get_aggregates(account_id=2).source == "cache"  # the child's value
        forget(store, 3)
        assert reader.get_aggregates(account_id=3).source == "fallback"
    finally:
        reader.close()
