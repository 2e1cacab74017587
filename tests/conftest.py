"""Fixtures: a database of the suite's own on the shared PostgreSQL, a Redis key prefix per test.

Set REQUIRE_SERVICES=1 (CI does) to turn a missing PostgreSQL or Redis into a failure, not a skip.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import redis
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from dashcache.config import Settings
from dashcache.db import init_db, make_engine
from dashcache.metrics import close_all
from dashcache.reader import DashboardReader
from dashcache.redis_server import RedisServer
from tests.helpers import captured_events
from tests.sentinels import SentinelTopology

PG_ADMIN_URL = os.environ.get(
    "TEST_PG_ADMIN_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"

# Properties, not speed: no example fails for taking long on a loaded machine.
hypothesis.settings.register_profile("dashcache", deadline=None)
hypothesis.settings.load_profile("dashcache")


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Undo any logging set-up a test (or a CLI command it runs) made."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


@pytest.fixture
def logs() -> Iterator[list[dict[str, Any]]]:
    """Events dashcache's modules log during the test (event name and fields, one dict each)."""
    with captured_events() as captured:
        yield captured


def _service_missing(what: str, error: Exception) -> None:
    message = f"{what} is not reachable: {error}"
    if REQUIRE_SERVICES:
        pytest.fail(message + " (REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of a PostgreSQL database created for this test session and dropped after it."""
    name = f"dashcache_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:  # any connection failure means the service is missing
        admin.dispose()
        _service_missing("PostgreSQL", error)
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def pg_engine(pg_url: str) -> Iterator[Engine]:
    """An engine on the session's PostgreSQL database, tables created."""
    engine = make_engine(pg_url)
    init_db(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def pg(pg_engine: Engine) -> Engine:
    """The PostgreSQL engine with empty tables."""
    with pg_engine.begin() as conn:
        conn.execute(text("TRUNCATE emails, categories RESTART IDENTITY CASCADE"))
    return pg_engine


@pytest.fixture
def sqlite_engine(tmp_path: os.PathLike[str]) -> Iterator[Engine]:
    """An engine on a fresh SQLite file, tables created."""
    engine = make_engine(f"sqlite:///{tmp_path}/test.db")
    init_db(engine)
    yield engine
    engine.dispose()


@pytest.fixture(params=["postgresql", "sqlite"])
def any_db(request: pytest.FixtureRequest) -> Engine:
    """Each dialect in turn, empty."""
    fixture = "pg" if request.param == "postgresql" else "sqlite_engine"
    engine: Engine = request.getfixturevalue(fixture)
    return engine


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis DB index the suite uses; keys are further isolated by a prefix per test."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as error:
        _service_missing("Redis", error)
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture
def key_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys, and the bindings kombu keeps for its queues,
    are deleted afterwards (never FLUSHALL)."""
    prefix = f"dctest-{uuid.uuid4().hex[:10]}"
    yield prefix
    close_all()  # flush this test's metric counts now, not into a deleted prefix at exit
    client = redis.Redis.from_url(redis_url)
    patterns = (f"{prefix}*", f"_kombu.*.{prefix}.*")
    keys = [key for pattern in patterns for key in client.scan_iter(match=pattern, count=1000)]
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A client on the suite's Redis DB index."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def settings(pg: Engine, pg_url: str, redis_url: str, key_prefix: str) -> Settings:
    """Settings pointing at the test database, the test Redis and this test's prefix.

    The shared Redis gets a generous timeout, so a stall of the loaded machine is not a Redis
    fault; a test that breaks Redis on purpose sets a short one on a server of its own.
    """
    return Settings(
        database_url=pg_url,
        redis_url=redis_url,
        broker_url=redis_url,
        key_prefix=key_prefix,
        refresh_seconds=60,
        max_breakdown=50,
        redis_timeout_seconds=5.0,
    )


@pytest.fixture
def reader(settings: Settings) -> Iterator[DashboardReader]:
    """A reader on the test database and this test's prefix, closed afterwards."""
    opened = DashboardReader.from_settings(settings)
    yield opened
    opened.close()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own, to pause, stop and start again."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def topology(tmp_path: Path) -> Iterator[SentinelTopology]:
    """A primary, a replica and three Sentinels of this test's own, on loopback ports."""
    with SentinelTopology(tmp_path) as started:
        yield started
