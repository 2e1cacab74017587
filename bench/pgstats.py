"""Database load as PostgreSQL itself counts it, without pg_stat_statements.

pg_stat_statements needs `shared_preload_libraries` and a server restart, which a shared server
may not allow; so the bench combines what every PostgreSQL has:

- Dashboard queries, counted: `pg_stat_user_tables.seq_scan` of `categories`. Every dashboard
  computation and every materialized-view read loads the category taxonomy with one sequential
  scan; nothing else in the bench scans it (foreign-key checks use its primary key). A REFRESH
  of the view reads no categories: refreshes are reported apart.
- Rows of `emails` read by dashboard queries: `seq_tup_read` plus `idx_tup_read` of every index
  but the primary key (mutations address rows by id; inserts read none). Scans are kept too,
  but a parallel scan counts once per process.
- Time spent on dashboard queries: `pg_stat_activity` sampled every few milliseconds from
  another database; each client backend running a dashboard statement adds the time since the
  previous sample (statement-seconds, the unit of `active_time`; parallel workers not added).
  The bench's own truth checks run under an application name of their own and are left out.
- Time spent on every statement: `pg_stat_database.active_time` (PostgreSQL 14+).

Counters are read with every client of the bench database disconnected, so they are flushed.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, fields

import psycopg2
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

SAMPLE_INTERVAL_SECONDS = 0.005
DASHBOARD_SQL = re.compile(r"count\(\*\) FILTER|FROM categories|REFRESH MATERIALIZED VIEW|_mv\b")

_COUNTERS_SQL = text(
    """
    SELECT
      (SELECT coalesce(sum(seq_scan), 0) FROM pg_stat_user_tables WHERE relname = 'categories'),
      (SELECT coalesce(sum(seq_scan), 0) FROM pg_stat_user_tables WHERE relname = 'emails')
      + (SELECT coalesce(sum(idx_scan), 0) FROM pg_stat_user_indexes
         WHERE relname = 'emails' AND indexrelname <> 'emails_pkey'),
      (SELECT coalesce(sum(seq_tup_read), 0) FROM pg_stat_user_tables WHERE relname = 'emails')
      + (SELECT coalesce(sum(idx_tup_read), 0) FROM pg_stat_user_indexes
         WHERE relname = 'emails' AND indexrelname <> 'emails_pkey'),
      (SELECT coalesce(active_time, 0) FROM pg_stat_database WHERE datname = current_database())
    """
)


@dataclass(frozen=True, slots=True)
class Counters:
    """Cumulative counters of the bench database at one moment."""

    dashboard_queries: int
    emails_scans: int
    emails_rows_read: int
    active_ms: float

    def __sub__(self, earlier: Counters) -> Counters:
        values = [getattr(self, f.name) - getattr(earlier, f.name) for f in fields(self)]
        return Counters(*values)


def read_counters(engine: Engine) -> Counters:
    """The counters now; call with every other client disconnected (see BenchDatabase)."""
    with engine.connect() as conn:
        row = conn.execute(_COUNTERS_SQL).one()
    engine.dispose()
    return Counters(int(row[0]), int(row[1]), int(row[2]), float(row[3]))


class ActivitySampler:
    """Samples pg_stat_activity of one database in a thread; integrates dashboard query time."""

    def __init__(self, database_url: str, database: str, ignore_application: str) -> None:
        url = make_url(database_url).set(database="postgres")
        self._dsn = url.set(drivername="postgresql").render_as_string(False)
        self._database = database
        self._ignore = ignore_application
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-sampler", daemon=True)
        self.dashboard_seconds = 0.0
        self.samples = 0

    def __enter__(self) -> ActivitySampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        conn = psycopg2.connect(self._dsn)
        conn.autocommit = True
        query = (
            "SELECT query FROM pg_stat_activity WHERE datname = %s AND state = 'active' "
            "AND backend_type = 'client backend' AND pid <> pg_backend_pid() "
            "AND application_name <> %s"
        )
        try:
            with conn.cursor() as cursor:
                previous = time.perf_counter()
                while not self._stop.wait(SAMPLE_INTERVAL_SECONDS):
                    cursor.execute(query, (self._database, self._ignore))
                    active = sum(1 for (sql,) in cursor.fetchall() if DASHBOARD_SQL.search(sql))
                    now = time.perf_counter()
                    self.dashboard_seconds += active * (now - previous)
                    self.samples += 1
                    previous = now
        finally:
            conn.close()
