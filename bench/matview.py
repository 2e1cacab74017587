"""The materialized-view strategy: PostgreSQL keeps the numbers, refreshed on a schedule.

The view is the every-scope query of `dashcache.stats` itself, with `now()` as its clock: one row
per (account, category) with every FILTER count, and the time of the refresh. A unique index on
(account, category), NULL categories included, lets `REFRESH ... CONCURRENTLY` run beside reads.
A read sums the rows of its scope and folds them with the same code as every other strategy.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, Engine, func, text
from sqlalchemy.dialects import postgresql

from dashcache.bench.mutations import Mutation
from dashcache.bench.strategies import BenchContext, Reading, reading
from dashcache.db import make_engine
from dashcache.keys import Kind, Scope
from dashcache.recompute import snapshot
from dashcache.schema.tables import DEMO_TABLES
from dashcache.stats import every_scope_query, fold_counts, load_categories

# The view's name is a constant of this module, never input: the f-strings below are safe.
VIEW = "dashboard_mv"
COLUMNS = "account_id, category_id, total, auto_labeled, unread, this_week, previous_week, at"
_SUMS = "sum(total), sum(auto_labeled), sum(unread), sum(this_week), sum(previous_week)"
_READ_ALL = text(
    f"SELECT NULL, category_id, {_SUMS}, max(at) FROM {VIEW} GROUP BY category_id"  # noqa: S608
)
_READ_ONE = text(
    "SELECT account_id, category_id, total, auto_labeled, unread, this_week, previous_week, at "  # noqa: S608
    f"FROM {VIEW} WHERE account_id = :account_id"
)
_REFRESHED_AT = text(f"SELECT max(at) FROM {VIEW}")  # noqa: S608


def view_sql() -> str:
    """The view's query: the every-scope counts as of `now()`, plus `now()` itself (on the
    bench's own database, which holds the demo schema)."""
    query = every_scope_query(DEMO_TABLES, func.now()).add_columns(func.now())
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    compiled = query.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
    return str(compiled)


def create_view(conn: Connection) -> None:
    """Create and populate the view and its unique index."""
    conn.execute(text(f"CREATE MATERIALIZED VIEW {VIEW} ({COLUMNS}) AS {view_sql()}"))
    conn.execute(
        text(
            f"CREATE UNIQUE INDEX {VIEW}_scope ON {VIEW} (account_id, category_id) "
            "NULLS NOT DISTINCT"
        )
    )


def refresh(conn: Connection, concurrently: bool = True) -> None:
    """Recompute every row of the view (autocommit connection)."""
    mode = "CONCURRENTLY " if concurrently else ""
    conn.execute(text(f"REFRESH MATERIALIZED VIEW {mode}{VIEW}"))


def drop_view(conn: Connection) -> None:
    """Drop the view and its index."""
    conn.execute(text(f"DROP MATERIALIZED VIEW IF EXISTS {VIEW}"))


def autocommit(engine: Engine) -> Connection:
    """A connection outside transactions, as REFRESH and DDL want."""
    return engine.connect().execution_options(isolation_level="AUTOCOMMIT")


class MatView:
    """Reads query the view; a thread refreshes it concurrently every `period` seconds."""

    name = "matview"

    def __init__(self, ctx: BenchContext, period: float) -> None:
        self.ctx = ctx
        self.period = period
        self.engine = make_engine(ctx.database_url, pool_size=64, max_overflow=0)
        self.refreshes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._refresh_loop, name="matview", daemon=True)

    def start(self) -> None:
        with autocommit(self.engine) as conn:
            drop_view(conn)
            create_view(conn)
        self._thread.start()

    def read(self, kind: Kind, account_id: Scope) -> Reading:
        with snapshot(self.engine) as session:
            if account_id is None:
                result = session.execute(_READ_ALL)
            else:
                result = session.execute(_READ_ONE, {"account_id": account_id})
            found = result.all()
            rows = [(account_id, row[1], *map(int, row[2:7])) for row in found]
            categories = load_categories(session)
            refreshed: datetime | None = max((row[7] for row in found), default=None)
            if refreshed is None:
                refreshed = session.execute(_REFRESHED_AT).scalar_one()
        stats = fold_counts(rows, categories, self.ctx.max_breakdown, [account_id])
        return reading(stats[account_id], kind, refreshed)

    def on_commit(self, batch: Sequence[Mutation]) -> None:
        """Nothing: the next scheduled refresh picks it up."""

    def make_cold(self, account_id: Scope) -> None:
        """A view has no cold keys: every row is always there."""

    def disconnect(self) -> None:
        self.engine.dispose()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        with autocommit(self.engine) as conn:
            drop_view(conn)
        self.engine.dispose()

    def _refresh_loop(self) -> None:
        delay = self.period
        while not self._stop.wait(delay):
            started = time.monotonic()
            self._refresh_once()
            delay = max(0.0, self.period - (time.monotonic() - started))

    def _refresh_once(self) -> None:
        with autocommit(self.engine) as conn:
            refresh(conn)
            self.refreshes += 1
