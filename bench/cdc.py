"""The WAL source's numbers: `python -m dashcache.bench.cdc --emails 1000000`.

Starts a PostgreSQL cluster of its own with `wal_level=logical` (bench/pgcluster.py), seeds it
(`dashcache.seed`, 1,000 accounts, 20 categories), sets `REPLICA IDENTITY FULL`, and runs
`dashcache cdc run` as a real process on a key prefix of its own (Redis from REDIS_URL). Then:

- single-row commits: raw SQL flips one email's `is_unread` in the biggest account and commits;
  lag = from just before COMMIT until a Redis read shows the new `unread_count`, for the
  account's scope and for `all`; each commit waits for the previous one.
- rows of `emails` read per change (PostgreSQL's counters, bench/pgstats.py, primary key aside:
  the bench's own UPDATE addresses its row by id), read with every client disconnected.
- a 100,000-row UPDATE in one transaction: time from COMMIT until both scopes are right; its
  changed rows per second is the sustained rate through one consumer.
- a 1,000,000-row UPDATE in one transaction (with --big): commit to right, and the consumer's
  peak resident memory (VmHWM) before and after it.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
from sqlalchemy import Engine, text

from dashcache.bench.database import BenchDatabase, bench_database
from dashcache.bench.event_lag import STATS_FLUSH_SECONDS, percentiles, shows, unread, wait
from dashcache.bench.pgcluster import PgCluster
from dashcache.bench.pgstats import read_counters
from dashcache.bench.shutdown import exits_on_sigterm
from dashcache.config import Settings
from dashcache.keys import KeySchema, Scope
from dashcache.store import RedisStore, make_redis

CATEGORIES = 20
UNREAD = "SELECT count(*) FILTER (WHERE is_unread) FROM emails"


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return -1.0


def candidates(engine: Engine, account: int) -> list[int]:
    """Ids of emails of `account` for the single-row commits to flip."""
    with engine.connect() as conn:
        found = conn.scalars(
            text("SELECT id FROM emails WHERE account_id = :a LIMIT 5000"), {"a": account}
        )
        return list(found)


def single_commits(
    engine: Engine, store: RedisStore, account: int, ids: list[int], count: int
) -> dict[str, list[float]]:
    """Commit -> visible lag (ms) of `count` single-row is_unread flips, per scope."""
    rng = random.Random(0)
    lags: dict[str, list[float]] = {"account": [], "all": []}
    for _ in range(count):
        before = {"account": unread(store, account), "all": unread(store, None)}
        with engine.connect() as conn:
            flipped = conn.execute(
                text(
                    "UPDATE emails SET is_unread = NOT is_unread WHERE id = :i RETURNING is_unread"
                ),
                {"i": rng.choice(ids)},
            ).scalar_one()
            started = time.monotonic()
            conn.commit()
        delta = 1 if flipped else -1
        scopes: tuple[tuple[str, Scope], ...] = (("account", account), ("all", None))
        for name, scope in scopes:
            seen = wait(shows(store, scope, before[name] + delta), 30)
            lags[name].append((seen - started) * 1000)
        time.sleep(rng.uniform(0.01, 0.03))
    return lags


def bulk_update(engine: Engine, store: RedisStore, rows: int) -> dict[str, Any]:
    """Flip is_unread of the first `rows` emails in one transaction; commit to right."""
    with engine.connect() as conn:
        conn.execute(
            text("UPDATE emails SET is_unread = NOT is_unread WHERE id <= :n"), {"n": rows}
        )
        started = time.monotonic()
        conn.commit()
        expected = int(conn.execute(text(UNREAD)).scalar_one())
    right = wait(lambda: unread(store, None) == expected, 900, pause=0.005)
    seconds = right - started
    return {
        "rows": rows,
        "commit_to_right_s": round(seconds, 2),
        "rows_per_s": round(rows / seconds),
    }


@click.command()
@click.option("--emails", type=int, default=1_000_000, show_default=True)
@click.option("--accounts", type=int, default=1000, show_default=True)
@click.option("--commits", type=int, default=200, show_default=True)
@click.option("--bulk", "bulk_rows", type=int, default=100_000, show_default=True)
@click.option("--big", "big_rows", type=int, default=0, help="Rows of the huge transaction.")
@exits_on_sigterm
def main(emails: int, accounts: int, commits: int, bulk_rows: int, big_rows: int) -> None:
    """Seed, run `dashcache cdc run`, print the WAL source's numbers as JSON."""
    base = Settings.from_env()
    with (
        PgCluster() as cluster,
        bench_database(cluster.url(), accounts, CATEGORIES) as database,
        tempfile.TemporaryDirectory() as tmp,
    ):
        database.grow_to(emails)
        with database.engine.begin() as conn:
            conn.execute(text("ALTER TABLE emails REPLICA IDENTITY FULL"))
        settings = replace(
            base,
            database_url=database.url,
            broker_url=base.redis_url,
            key_prefix=f"bench-{uuid.uuid4().hex[:8]}",
        )
        report = measure(settings, database, Path(tmp), commits, bulk_rows, big_rows)
    click.echo(json.dumps({"emails": emails, **report}, indent=2))


def measure(
    settings: Settings,
    database: BenchDatabase,
    tmp: Path,
    commits: int,
    bulk_rows: int,
    big_rows: int,
) -> dict[str, Any]:
    """Run the consumer and take every measurement."""
    client = make_redis(settings.redis_url, 5.0)
    store = RedisStore(client, KeySchema(settings.key_prefix), settings.ttl_seconds)
    env = {**os.environ, **settings.to_env(), "DASHCACHE_LOG_FORMAT": "json"}
    log_path = tmp / "cdc.log"
    command = [str(Path(sys.executable).parent / "dashcache"), "cdc", "run"]
    engine = database.engine
    account = database.largest_accounts(1)[0]
    with log_path.open("w") as log:
        consumer = subprocess.Popen(command, env=env, stderr=log, stdout=subprocess.DEVNULL)  # noqa: S603
    try:
        wait(lambda: '"cdc.ready"' in log_path.read_text(), 1800, pause=0.2)
        ids = candidates(engine, account)
        time.sleep(STATS_FLUSH_SECONDS)
        before = read_counters(engine)
        lags = single_commits(engine, store, account, ids, commits)
        time.sleep(STATS_FLUSH_SECONDS)
        rows_read = (read_counters(engine) - before).emails_rows_read
        bulk = bulk_update(engine, store, bulk_rows)
        report: dict[str, Any] = {
            "single_commits": commits,
            "lag_account_scope": percentiles(lags["account"]),
            "lag_all_scope": percentiles(lags["all"]),
            "emails_rows_read_per_change": round(rows_read / commits, 2),
            "bulk_update": bulk,
        }
        if big_rows:
            rss_before = peak_rss_mb(consumer.pid)
            report["big_update"] = {
                **bulk_update(engine, store, big_rows),
                "consumer_peak_rss_mb_before": rss_before,
                "consumer_peak_rss_mb_after": peak_rss_mb(consumer.pid),
            }
        return report
    finally:
        consumer.terminate()
        consumer.wait(timeout=30)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("SELECT pg_drop_replication_slot(:s)"), {"s": settings.cdc_slot})
        keys = list(client.scan_iter(match=f"{settings.key_prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


if __name__ == "__main__":
    main()
