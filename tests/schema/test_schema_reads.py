"""Mapped schemas on real PostgreSQL: warmed, fallback and fresh values equal a brute-force count.

Each variant has other names for everything, in a PostgreSQL schema of its own: multi-tenant
with boolean and `when = "false"` flags, hostile identifiers (quotes, spaces, unicode) with a
`when = "null"` flag, and single-tenant (no account column).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine, event, text

from dashcache.async_reader import AsyncDashboardReader
from dashcache.config import Settings
from dashcache.errors import InvalidArgument
from dashcache.keys import KeySchema
from dashcache.observe.verify import verify
from dashcache.reader import DashboardReader
from dashcache.recompute import recompute_every_scope
from dashcache.schema.check import engine_for
from dashcache.store import RedisStore
from tests.mapped_schemas import SINGLE, VARIANTS, AppSchema, Variant, app_schema, random_emails

CATEGORIES = ["Work", "News", 'Quo"te', "Späße"]


@pytest.fixture(params=VARIANTS, ids=[v.label for v in VARIANTS])
def app(request: pytest.FixtureRequest, pg: Engine, tmp_path: Path) -> Iterator[AppSchema]:
    """A variant's schema holding 150 emails (4 accounts when multi-tenant)."""
    variant: Variant = request.param
    with app_schema(pg, variant, tmp_path, CATEGORIES) as schema:
        accounts = None if variant.account is None else 4
        schema.add(random_emails(150, 1, accounts, len(CATEGORIES)))
        yield schema


@pytest.fixture
def mapped(settings: Settings, app: AppSchema) -> Settings:
    """The test's settings with the variant's mapping file."""
    return replace(settings, schema_file=app.mapping_file)


@pytest.fixture
def mapped_reader(mapped: Settings) -> Iterator[DashboardReader]:
    """A reader of the mapped schema."""
    reader = DashboardReader.from_settings(mapped)
    yield reader
    reader.close()


def assert_matches_truth(
    reader: DashboardReader, app: AppSchema, source: str, **read: bool
) -> None:
    """Every scope's aggregates and full breakdown equal the brute-force count (a fallback
    fills both kinds, so the breakdown read after it is a hit)."""
    limit = len(CATEGORIES)
    for scope in app.scopes():
        aggregates = reader.get_aggregates(account_id=scope, **read)
        breakdown = reader.get_category_breakdown(limit=limit, account_id=scope, **read)
        second = "cache" if source == "fallback" else source
        assert (aggregates.source, breakdown.source) == (source, second)
        expected_aggregates, _ = app.truth(scope, aggregates.computed_at)
        _, expected_breakdown = app.truth(scope, breakdown.computed_at)
        assert aggregates.data == expected_aggregates, scope
        assert [list(pair) for pair in breakdown.data.items()] == expected_breakdown, scope


def test_warmed_values_equal_brute_force(
    mapped: Settings, app: AppSchema, mapped_reader: DashboardReader, redis_client: redis.Redis
) -> None:
    """The every-scope pass over the mapped tables warms every scope with the true numbers."""
    engine = engine_for(mapped)
    store = RedisStore(redis_client, KeySchema(mapped.key_prefix), mapped.ttl_seconds)
    result = recompute_every_scope(engine, store, mapped.max_breakdown)
    assert result.scopes == len(app.scopes())
    assert_matches_truth(mapped_reader, app, "cache")
    report = verify(engine, store, mapped.max_breakdown)
    assert (report.ok, report.checked, report.missing) == (True, 2 * len(app.scopes()), 0)
    engine.dispose()
    if app.variant.account is None:
        assert store.warmed_accounts() == []  # single-tenant: the one scope only


def test_fallback_and_fresh_equal_brute_force(
    app: AppSchema, mapped_reader: DashboardReader
) -> None:
    """With nothing cached, a read computes from the mapped tables; so does `fresh=True`."""
    assert_matches_truth(mapped_reader, app, "fallback")
    assert_matches_truth(mapped_reader, app, "fresh", fresh=True)


def test_single_tenant_reads_take_no_account(
    settings: Settings, pg: Engine, tmp_path: Path
) -> None:
    """Without an account column, a read of an account is refused saying why."""
    with app_schema(pg, SINGLE, tmp_path, CATEGORIES) as schema:
        reader = DashboardReader.from_settings(replace(settings, schema_file=schema.mapping_file))
        try:
            with pytest.raises(InvalidArgument, match="single-tenant") as raised:
                reader.get_aggregates(account_id=1)
            assert "no [emails].account column" in str(raised.value)
            with pytest.raises(InvalidArgument, match="single-tenant"):
                reader.get_category_breakdown(account_id=0)
            assert reader.get_aggregates().data["total_emails"] == 0
        finally:
            reader.close()


def test_async_reader_reads_the_mapped_tables(settings: Settings, app: AppSchema) -> None:
    """The asyncio reader computes from the mapped tables too, and a single-tenant one refuses
    an account as the sync reader does."""

    async def read() -> None:
        mapped = replace(settings, schema_file=app.mapping_file)
        async with AsyncDashboardReader.from_settings(mapped) as reader:
            for scope in app.scopes():
                value = await reader.get_aggregates(account_id=scope)
                assert value.data == app.truth(scope, value.computed_at)[0], scope
            if app.variant.account is None:
                with pytest.raises(InvalidArgument, match="single-tenant"):
                    await reader.get_category_breakdown(account_id=1)

    asyncio.run(read())


def test_queries_quote_every_name(app: AppSchema, mapped_reader: DashboardReader) -> None:
    """The statements name the mapped tables, quoted where needed, and nothing of the demo."""
    seen: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        seen.append(statement)

    event.listen(mapped_reader.engine, "before_cursor_execute", record)
    mapped_reader.get_aggregates()
    quote = mapped_reader.engine.dialect.identifier_preparer.quote
    assert any(quote(app.variant.emails) in statement for statement in seen)
    assert not any("emails.is_unread" in statement for statement in seen)
    with app.engine.connect() as conn:  # the demo table is empty: nothing came from it
        assert conn.execute(text("SELECT count(*) FROM emails")).scalar_one() == 0
    assert mapped_reader.get_aggregates().data["total_emails"] == 150
