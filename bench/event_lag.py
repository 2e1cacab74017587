"""Event freshness with a real worker: `python -m dashcache.bench.event_lag --emails 100000`.

Creates a PostgreSQL database of its own, seeds it (`dashcache.seed`), starts a Celery worker
(concurrency 2) on a key prefix of its own, then measures:

- isolated events: a tracked session flips one email's `is_unread` in the biggest account and
  commits; lag = from just before `commit()` until a Redis read (what a reader's hit does) shows
  the new `unread_count`, for the account's scope and for `all`. Each event waits for the
  previous one to settle, so every one is isolated.
- rows of `emails` read by the cache per isolated event: PostgreSQL's own counters
  (bench/pgstats.py: rows read but by primary key, which is how the producer addresses its
  email), read once the worker's start-up pass is flushed and again after the isolated events,
  waiting out the statistics' idle flush (10 s) each time; and the event recomputes they caused.
- a burst: 10,000 emails of that account are updated in one transaction, then one event per
  email (with that transaction's txid) is published, one `publish` call each, as fast as
  possible. Reported: time to publish, event recomputes per key (from the worker's log), and
  time from the last publish until both scopes hold the right value, no run is pending or
  running and the events queue is empty.

Redis comes from the environment (REDIS_URL) and is the broker too, so the queue length can be
read; every key the run creates is deleted at the end, and the database is dropped.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import sessionmaker

from dashcache.bench.database import bench_database
from dashcache.bench.pgstats import read_counters
from dashcache.bench.shutdown import exits_on_sigterm
from dashcache.config import Settings
from dashcache.events import EmailRow, EmailUpdated, EventPublisher, track_mutations
from dashcache.keys import KeySchema, Kind, Scope
from dashcache.models import Email
from dashcache.store import RedisStore, make_redis

ACCOUNT = 1
"""Seeded accounts are log-uniform: account 1 is the biggest."""
CATEGORIES = 20


@contextmanager
def running_worker(settings: Settings, log_path: Path) -> Iterator[Path]:
    """A real Celery worker; its JSON log goes to `log_path`; returns once it warmed once.

    The bench counts runs from that log, so the worker logs at INFO whatever the environment says.
    """
    log_settings = {"DASHCACHE_LOG_FORMAT": "json", "DASHCACHE_LOG_LEVEL": "INFO"}
    env = {**os.environ, **settings.to_env(), **log_settings}
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "dashcache.worker",
        "worker",
        "--concurrency",
        "2",
    ]
    command += ["--without-gossip", "--without-mingle", "--loglevel", "INFO"]
    with log_path.open("w") as log:
        worker = subprocess.Popen(command, env=env, stderr=log, stdout=subprocess.DEVNULL)  # noqa: S603
    try:
        wait(lambda: "recompute.finished" in log_path.read_text(), 300)
        yield log_path
    finally:
        worker.terminate()
        worker.wait(30)


STATS_FLUSH_SECONDS = 11.0
"""An idle backend flushes its table statistics within 10 s (PostgreSQL 15)."""


def wait(check: Callable[[], bool], timeout: float, pause: float = 0.001) -> float:
    """Poll until `check()` holds; return the monotonic time it did; raise on timeout."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("the bench waited too long; see the log of its worker or consumer")
        time.sleep(pause)
    return time.monotonic()


def unread(store: RedisStore, scope: Scope) -> int:
    envelope = store.get(Kind.AGGREGATES, scope)
    return -1 if envelope is None else int(envelope.data["unread_count"])


def shows(store: RedisStore, scope: Scope, count: int) -> Callable[[], bool]:
    """A check: the scope's stored unread_count is `count`."""
    return lambda: unread(store, scope) == count


def idle(store: RedisStore, settings: Settings) -> bool:
    """No event run pending or running, and nothing waiting on the events queue."""
    base = f"{settings.key_prefix}:v1:"
    for pattern in ("pending:*", "running:*"):
        if next(store.client.scan_iter(match=base + pattern), None) is not None:
            return False
    return int(store.client.llen(settings.events_queue)) == 0


def candidates(engine: Engine) -> list[int]:
    """Ids of emails of the biggest account for the isolated events to flip."""
    with engine.connect() as conn:
        return list(conn.scalars(select(Email.id).where(Email.account_id == ACCOUNT).limit(5000)))


def isolated_lags(
    settings: Settings,
    engine: Engine,
    store: RedisStore,
    publisher: EventPublisher,
    count: int,
    ids: list[int],
) -> dict[str, list[float]]:
    """Commit -> visible lag (ms) of `count` isolated is_unread flips, per scope."""
    sessions = sessionmaker(engine, expire_on_commit=False)
    track_mutations(sessions, publisher.publish_many)
    lags: dict[str, list[float]] = {"account": [], "all": []}
    rng = random.Random(0)
    for _ in range(count):
        wait(lambda: idle(store, settings), 60)
        before = {"account": unread(store, ACCOUNT), "all": unread(store, None)}
        with sessions() as session:
            email = session.get_one(Email, rng.choice(ids))
            delta = -1 if email.is_unread else 1
            email.is_unread = not email.is_unread
            started = time.monotonic()
            session.commit()
        for name, scope in (("account", ACCOUNT), ("all", None)):
            target = before[name] + delta
            seen = wait(shows(store, scope, target), 30)
            lags[name].append((seen - started) * 1000)
        time.sleep(rng.uniform(0.02, 0.06))
    return lags


def burst(
    settings: Settings, engine: Engine, store: RedisStore, publisher: EventPublisher, size: int
) -> dict[str, Any]:
    """Update `size` emails in one transaction, publish one event each; time what follows."""
    wait(lambda: idle(store, settings), 60)
    with engine.begin() as conn:
        rows = conn.execute(
            select(Email.id, Email.category_id, Email.is_unread, Email.is_auto_labeled)
            .add_columns(Email.created_at)
            .where(Email.account_id == ACCOUNT)
            .order_by(Email.id)
            .limit(size)
        ).all()
        conn.execute(
            update(Email)
            .where(Email.id.in_([r[0] for r in rows]))
            .values(is_unread=~Email.is_unread)
        )
        txid = int(conn.exec_driver_sql("SELECT pg_current_xact_id()::text").scalar_one())
        truth = {
            scope: conn.scalar(select(func.count()).where(Email.is_unread.is_(True), *where))
            for scope, where in ((ACCOUNT, [Email.account_id == ACCOUNT]), (None, []))
        }
    events = [
        EmailUpdated(
            ACCOUNT,
            r[0],
            EmailRow(r[1], r[2], r[3], r[4]),
            EmailRow(r[1], not r[2], r[3], r[4]),
            txid=txid,
        )
        for r in rows
    ]
    started = time.monotonic()
    for event in events:
        publisher.publish(event)
    published = time.monotonic()
    right = wait(lambda: all(unread(store, s) == n for s, n in truth.items()), 60)
    settled = wait(lambda: idle(store, settings), 60)
    return {
        "events": len(events),
        "publish_s": round(published - started, 3),
        "right_after_last_s": round(right - published, 3),
        "right_and_idle_after_last_s": round(settled - published, 3),
    }


def event_runs(lines: Iterable[str]) -> Counter[str]:
    """Event recomputes per scope label in a worker's JSON log lines (skipped runs left out)."""
    runs: Counter[str] = Counter()
    for line in lines:
        if '"recompute.finished"' in line:
            record = json.loads(line)
            if record.get("trigger") == "event" and record.get("outcome") != "skipped":
                runs[record["scope"]] += 1
    return runs


def percentiles(samples: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return {
        "p50_ms": round(cuts[49], 1),
        "p99_ms": round(cuts[98], 1),
        "max_ms": round(max(samples), 1),
    }


@click.command()
@click.option("--emails", type=int, default=100_000, show_default=True)
@click.option("--accounts", type=int, default=1000, show_default=True)
@click.option("--events", "isolated", type=int, default=100, show_default=True)
@click.option("--burst", "burst_size", type=int, default=10_000, show_default=True)
@click.option(
    "--pg-admin-url",
    default="postgresql+psycopg2://postgres@127.0.0.1:5432/postgres",
    show_default=True,
    help="The PostgreSQL server the bench creates its database on (any database of it).",
)
@exits_on_sigterm
def main(emails: int, accounts: int, isolated: int, burst_size: int, pg_admin_url: str) -> None:
    """Seed, run a worker, print event freshness lags and the burst's numbers as JSON."""
    base = Settings.from_env()
    with (
        bench_database(pg_admin_url, accounts, CATEGORIES) as database,
        tempfile.TemporaryDirectory() as tmp,
    ):
        prefix = f"bench-{uuid.uuid4().hex[:8]}"
        settings = replace(
            base, database_url=database.url, broker_url=base.redis_url, key_prefix=prefix
        )
        engine = database.engine
        database.grow_to(emails)
        client = make_redis(settings.redis_url, 5.0)
        store = RedisStore(client, KeySchema(settings.key_prefix), settings.ttl_seconds)
        publisher = EventPublisher(settings, client=client)
        try:
            with running_worker(settings, Path(tmp) / "worker.log") as log_path:
                wait(lambda: idle(store, settings), 60)
                ids = candidates(engine)
                time.sleep(STATS_FLUSH_SECONDS)
                before = read_counters(engine)
                start = len(log_path.read_text().splitlines())
                lags = isolated_lags(settings, engine, store, publisher, isolated, ids)
                wait(lambda: idle(store, settings), 60)
                time.sleep(STATS_FLUSH_SECONDS)
                rows_read = (read_counters(engine) - before).emails_rows_read
                skip = len(log_path.read_text().splitlines())
                isolated_runs = event_runs(log_path.read_text().splitlines()[start:skip])
                result = burst(settings, engine, store, publisher, burst_size)
                time.sleep(0.5)  # let the last run's log line reach the file
                runs = event_runs(log_path.read_text().splitlines()[skip:])
        finally:
            publisher.close()
            keys = list(client.scan_iter(match=f"{settings.key_prefix}*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()
    report = {
        "emails": emails,
        "isolated_events": isolated,
        "lag_account_scope": percentiles(lags["account"]),
        "lag_all_scope": percentiles(lags["all"]),
        "emails_rows_read_per_event": round(rows_read / isolated, 1),
        "isolated_recomputes_per_scope": dict(isolated_runs),
        "burst": {**result, "recomputes_per_scope": dict(runs)},
    }
    click.echo(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
