"""A host app (tests/examples/host_app.py) as its integrator runs it: a module-singleton
repository from a plain factory dependency, called through `TestClient(app)` outside a context
manager (so every request runs on a new event loop, closed after it), with a TOML schema mapping,
started while PostgreSQL is unreachable and Redis warm, then with the database back."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx2
import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from dashcache import clock
from dashcache.config import Settings
from dashcache.keys import KeySchema, Kind
from dashcache.recompute import recompute_every_scope
from dashcache.schema.check import engine_for
from dashcache.store import RedisStore
from tests.examples import host_app
from tests.mapped_schemas import SINGLE, AppSchema, app_schema, random_emails
from tests.servers import TcpProxy

CATEGORIES = ["Work", "News", "Travel", "Bills"]
REQUESTS = 30


@pytest.fixture
def app(pg: Engine, tmp_path: Path) -> Iterator[AppSchema]:
    """The email app's single-tenant shape (`is_read` as `when = "false"`, auto-labeled when
    it has a category: `auto_labeled = { column = "category_id", when = "not_null" }`), 120
    emails."""
    with app_schema(pg, SINGLE, tmp_path, CATEGORIES) as schema:
        schema.add(random_emails(120, 1, None, len(CATEGORIES)))
        yield schema


@pytest.fixture
def proxy(pg_url: str) -> Iterator[TcpProxy]:
    """A proxy in front of the test PostgreSQL that the test cuts and restores."""
    proxy = TcpProxy.of_database(pg_url)
    yield proxy
    proxy.cut()


@pytest.fixture
def host_env(
    settings: Settings, app: AppSchema, proxy: TcpProxy, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    """The app's environment: the mapping, and DATABASE_URL through the proxy. The singleton
    is closed and forgotten afterwards."""
    hosted = replace(
        settings,
        database_url=proxy.database_url(settings.database_url),
        schema_file=app.mapping_file,
        db_timeout_seconds=2.0,
    )
    for name, value in hosted.to_env().items():
        monkeypatch.setenv(name, value)
    yield hosted
    repository = host_app.forget_repository()
    if repository is not None:
        asyncio.run(repository.reader.aclose())


def truth(app: AppSchema) -> dict[str, Any]:
    """What the route must answer now, by brute force over the rows."""
    aggregates, breakdown = app.truth(None, clock.now())
    return {"aggregates": aggregates, "category_breakdown": dict(breakdown)}


def test_host_app_serves_the_cache_without_the_database_then_falls_back(
    settings: Settings,
    app: AppSchema,
    proxy: TcpProxy,
    host_env: Settings,
    redis_client: redis.Redis,
) -> None:
    """Database unreachable: the warm values are served, a miss and a fresh read answer 503
    (the typed error, through the route's own handling). Database back: misses fall back,
    fresh reads and hits follow the rows. Every request on a new loop, released after it."""
    store = RedisStore(redis_client, KeySchema(settings.key_prefix), settings.ttl_seconds)
    warming = engine_for(replace(settings, schema_file=app.mapping_file))
    recompute_every_scope(warming, store, settings.max_breakdown)
    warming.dispose()
    proxy.cut()
    client = TestClient(host_app.app)  # not a context manager: each request on a new loop
    answers: list[tuple[str, httpx2.Response]] = []

    def ask(what: str, **params: str) -> httpx2.Response:
        response = client.get("/api/dashboard/stats", params=params)
        answers.append((what, response))
        repository = host_app.get_dashboard_repository()
        left = dict(repository.reader.loops.parts)
        assert left == {}, f"{what}: the request's loop kept its connections: {left}"
        return response

    def forget_cached() -> None:
        store.client.delete(*(store.keys.value(kind, None) for kind in Kind))

    for n in range(8):
        hit = ask(f"hit {n}, database down")
        assert (hit.status_code, hit.json()) == (200, truth(app)), hit.text
    forget_cached()
    for what, params in (("miss", {}), ("fresh", {"fresh": "true"})):
        refused = ask(f"{what}, database down", **params)
        assert refused.status_code == 503, refused.text
        assert "cannot check the schema mapping, the database failed" in refused.json()["detail"]

    proxy.restore()
    for n in range(5):
        forget_cached()
        for what, params in ((f"miss {n}", {}), (f"hit {n}", {})):
            answer = ask(what, **params)
            assert (answer.status_code, answer.json()) == (200, truth(app)), (what, answer.text)
        app.add(random_emails(7, 1000 + 10 * n, None, len(CATEGORIES)))
        for what, params in ((f"fresh {n}", {"fresh": "true"}), (f"hit after fresh {n}", {})):
            answer = ask(what, **params)
            assert (answer.status_code, answer.json()) == (200, truth(app)), (what, answer.text)
    assert len(answers) == REQUESTS
