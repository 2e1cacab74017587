"""Fixtures of the WAL source's tests: a PostgreSQL cluster of the suite's own with
`wal_level=logical` (the shared server runs `replica`), a slot and publication per test.

With REQUIRE_SERVICES=1 a cluster that cannot start fails the tests instead of skipping them.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text

from dashcache.bench.pgcluster import PgCluster
from dashcache.config import Settings
from dashcache.db import init_db, make_engine
from tests.conftest import REQUIRE_SERVICES
from tests.helpers import wait_until

DATABASE = "dashcache_cdc"


@pytest.fixture(scope="session")
def wal_cluster() -> Iterator[PgCluster]:
    """A running cluster with logical decoding, removed after the session."""
    cluster = PgCluster()
    try:
        cluster.start()
    except (OSError, subprocess.SubprocessError) as error:
        detail = getattr(error, "stderr", "") or cluster.log_tail()
        cluster.stop()
        message = f"cannot start a PostgreSQL cluster with wal_level=logical: {error} {detail}"
        if REQUIRE_SERVICES:
            pytest.fail(message + " (REQUIRE_SERVICES=1)", pytrace=False)
        pytest.skip(message)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def wal_url(wal_cluster: PgCluster) -> str:
    """A database of the cluster with the demo tables, emails with REPLICA IDENTITY FULL."""
    admin = create_engine(wal_cluster.url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {DATABASE}"))
    admin.dispose()
    url = wal_cluster.url(DATABASE)
    engine = make_engine(url)
    init_db(engine)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE emails REPLICA IDENTITY FULL"))
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def wal_engine_session(wal_url: str) -> Iterator[Engine]:
    """An engine on the cluster's database."""
    engine = make_engine(wal_url)
    yield engine
    engine.dispose()


@pytest.fixture
def wal_engine(wal_engine_session: Engine) -> Engine:
    """The cluster's engine with empty tables (emptied before this test's slot exists)."""
    with wal_engine_session.begin() as conn:
        conn.execute(text("TRUNCATE emails, categories RESTART IDENTITY CASCADE"))
    return wal_engine_session


@pytest.fixture
def cdc_settings(
    wal_engine: Engine, wal_url: str, redis_url: str, key_prefix: str
) -> Iterator[Settings]:
    """Settings on the cluster and this test's prefix, with a slot and publication of its own
    (both dropped afterwards) and a short consumer lock."""
    name = f"dc_{uuid.uuid4().hex[:10]}"
    yield Settings(
        database_url=wal_url,
        redis_url=redis_url,
        broker_url=redis_url,
        key_prefix=key_prefix,
        max_breakdown=50,
        redis_timeout_seconds=5.0,
        cdc_slot=name,
        cdc_publication=name,
        cdc_lock_seconds=3.0,
        cdc_chunk_rows=50,
    )
    with wal_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:

        def dropped() -> bool:
            """End the slot's walsender, and drop the slot once it has gone (or find it gone)."""
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots"
                    " WHERE slot_name = :s AND active_pid IS NOT NULL"
                ),
                {"s": name},
            )
            dropped = conn.execute(
                text(
                    "SELECT count(pg_drop_replication_slot(slot_name)) FROM pg_replication_slots"
                    " WHERE slot_name = :s AND NOT active"
                ),
                {"s": name},
            ).scalar_one()
            gone = conn.execute(
                text("SELECT count(*) = 0 FROM pg_replication_slots WHERE slot_name = :s"),
                {"s": name},
            ).scalar_one()
            return bool(dropped or gone)

        wait_until(dropped, f"the test's slot {name} dropped", poll=0.1)
        conn.execute(text(f"DROP PUBLICATION IF EXISTS {name}"))
