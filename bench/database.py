"""The benchmark's own PostgreSQL database: created, grown to each size, dropped at the end."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Engine, func, select, text
from sqlalchemy.engine import make_url

from dashcache import clock
from dashcache.db import init_db, make_engine
from dashcache.errors import InvalidArgument
from dashcache.keys import Scope
from dashcache.models import Email
from dashcache.recompute import snapshot
from dashcache.seed import SeedPlan, seed_database
from dashcache.stats import ScopeStats, compute_scope

QUIET_TIMEOUT_SECONDS = 30.0
TRUTH_APPLICATION = "dashcache-bench-truth"


@dataclass(slots=True)
class BenchDatabase:
    """A database of the bench's own on the server of `server_url`."""

    server_url: str
    name: str
    engine: Engine
    accounts: int
    categories: int
    rows: int = 0

    @property
    def url(self) -> str:
        """URL of the bench database (worker processes connect with it)."""
        return make_url(self.server_url).set(database=self.name).render_as_string(False)

    def grow_to(self, emails: int, progress: Callable[[int], None] | None = None) -> None:
        """Append seeded emails until the table holds `emails` rows (VACUUM ANALYZE after)."""
        missing = emails - self.count_emails()
        if missing > 0:
            plan = SeedPlan(missing, self.categories, self.accounts, 30, seed=self.rows)
            seed_database(self.engine, plan, clock.now(), progress=progress)
        self.rows = self.count_emails()

    def count_emails(self) -> int:
        """Rows in `emails` now."""
        with self.engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(Email)) or 0)

    def truth(self, account_id: Scope, max_breakdown: int) -> ScopeStats:
        """What the database says now, computed directly (never through a strategy).

        Its connection is named TRUTH_APPLICATION, so load sampling can leave it out.
        """
        truth_engine = make_engine(self.url, connect_args={"application_name": TRUTH_APPLICATION})
        with snapshot(truth_engine) as session:
            stats = compute_scope(session, account_id, clock.now(), max_breakdown)
        truth_engine.dispose()
        return stats

    def largest_accounts(self, count: int) -> list[int]:
        """The accounts with the most emails, largest first."""
        query = (
            select(Email.account_id)
            .group_by(Email.account_id)
            .order_by(func.count().desc(), Email.account_id)
            .limit(count)
        )
        with self.engine.connect() as conn:
            return [int(account) for account in conn.scalars(query)]

    def median_account(self) -> int:
        """An account of median size (by email count) among accounts with emails."""
        query = select(Email.account_id).group_by(Email.account_id).order_by(func.count())
        with self.engine.connect() as conn:
            accounts = [int(account) for account in conn.scalars(query)]
        return accounts[len(accounts) // 2]

    def wait_until_quiet(self) -> None:
        """Wait until no other client is connected, so every session's statistics are flushed.

        PostgreSQL writes a backend's table and database statistics when it disconnects (or
        after it has idled a while); counters read after that include everything it did.
        """
        deadline = time.monotonic() + QUIET_TIMEOUT_SECONDS
        query = text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_type IN ('client backend', 'parallel worker')"
        )
        while time.monotonic() < deadline:
            with self.engine.connect() as conn:
                others = int(conn.scalar(query) or 0)
            self.engine.dispose()
            if others == 0:
                return
            time.sleep(0.05)
        raise TimeoutError(f"clients still connected to {self.name} after {QUIET_TIMEOUT_SECONDS}s")


@contextmanager
def bench_database(server_url: str, accounts: int, categories: int) -> Iterator[BenchDatabase]:
    """Create a fresh database on the server, tables ready; drop it when the block ends."""
    url = make_url(server_url)
    if not url.drivername.startswith("postgresql"):
        raise InvalidArgument(f"the bench needs PostgreSQL, got a {url.drivername} URL")
    name = f"dashcache_bench_{uuid.uuid4().hex[:8]}"
    admin_url = url.set(database="postgres").render_as_string(False)
    admin = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    engine = make_engine(url.set(database=name).render_as_string(False))  # connects lazily
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        init_db(engine)
        yield BenchDatabase(server_url, name, engine, accounts, categories)
    finally:
        # Dropped whatever stopped the block, even between CREATE and the first statement.
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
