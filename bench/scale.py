"""How an every-scope pass grows with the number of accounts: `python -m dashcache.bench.scale`.

For each account count, a PostgreSQL database of the bench's own is seeded with the same number
of emails; then, in this process:

- the query alone: the pass's own query (streamed in account order) with every row fetched,
  nothing folded (the baseline: what the database and the driver cost);
- the pass: `recompute_every_scope` (stream, fold, fenced writes to Redis), median of repeats,
  and its ratio to the query;
- its peak Python heap (`tracemalloc`, in one extra pass of its own, since tracing slows it);
- the Redis memory of the values written (`MEMORY USAGE` of a sample), and with their delta
  states, delta logs and warmed-set entry (`redis_bytes_per_scope_all`);
- with `--workers N` (repeatable): the sharded pass across N real Celery workers, its wall time
  and a worker's peak memory (dashcache.bench.scale_workers).

Redis comes from REDIS_URL, under a key prefix of the run's own, deleted at the end.
"""

from __future__ import annotations

import json
import time
import tracemalloc
import uuid
from collections.abc import Callable
from statistics import median
from typing import Any

import click

from dashcache import clock
from dashcache.bench.dashcache import bytes_per_scope
from dashcache.bench.database import BenchDatabase, bench_database
from dashcache.bench.scale_workers import sharded_pass
from dashcache.bench.shutdown import exits_on_sigterm
from dashcache.bench.timing import ratio
from dashcache.config import Settings
from dashcache.keys import KeySchema, Kind
from dashcache.recompute import recompute_every_scope, snapshot
from dashcache.schema.tables import tables_of
from dashcache.stats import streamed_every_scope_query
from dashcache.store import RedisStore, make_redis

CATEGORIES = 20
MEMORY_SAMPLE = 200
"""Scopes whose values' `MEMORY USAGE` is averaged for the bytes per scope."""


def timed(step: Callable[[], object], repeats: int) -> float:
    """Median seconds of `repeats` runs of `step`."""
    durations = []
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        durations.append(time.perf_counter() - started)
    return median(durations)


def query_only(database: BenchDatabase) -> None:
    """Run the pass's own query and fetch every row, folding and writing nothing."""
    with snapshot(database.engine) as session:
        query = streamed_every_scope_query(tables_of(session), clock.now())
        for _ in session.connection().execute(query):
            pass


def scope_bytes(client: Any, keys: KeySchema, scopes: list[int]) -> float:
    """Mean Redis MEMORY USAGE of every key of the given scopes: values, states, delta log."""
    pipe = client.pipeline(transaction=False)
    for scope in scopes:
        for kind in Kind:
            pipe.memory_usage(keys.value(kind, scope), samples=0)
            pipe.memory_usage(keys.state(kind, scope), samples=0)
        pipe.memory_usage(keys.deltas(scope), samples=0)
    set_bytes = int(client.memory_usage(keys.scopes, samples=0) or 0)
    warmed = max(int(client.scard(keys.scopes)), 1)
    sizes = sum(int(size or 0) for size in pipe.execute())
    return sizes / max(len(scopes), 1) + set_bytes / warmed


def measure(
    settings: Settings, accounts: int, emails: int, repeats: int, workers: tuple[int, ...] = ()
) -> dict[str, Any]:
    """One account count: seed, then time the query and the pass."""
    client = make_redis(settings.redis_url, 5.0)
    store = RedisStore(client, KeySchema(f"bench-scale-{uuid.uuid4().hex[:8]}"), 3600)
    try:
        with bench_database(settings.database_url, accounts, CATEGORIES) as database:
            database.grow_to(emails)

            def recompute() -> None:
                recompute_every_scope(database.engine, store, settings.max_breakdown)

            recompute()  # warm the caches of PostgreSQL and of the fence's script
            query_seconds = timed(lambda: query_only(database), repeats)
            pass_seconds = timed(recompute, repeats)
            tracemalloc.start()
            result = recompute_every_scope(database.engine, store, settings.max_breakdown)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            sample = store.warmed_accounts()[:MEMORY_SAMPLE]
            per_scope = bytes_per_scope(client, store.keys, sample)
            per_scope_all = scope_bytes(client, store.keys, sample)
            by_workers = [sharded_pass(settings, database.url, count, repeats) for count in workers]
    finally:
        stale = list(client.scan_iter(f"{store.keys.prefix}:*", count=1000))
        if stale:
            client.delete(*stale)
        client.close()
    return {
        "accounts_seeded": accounts,
        "emails": database.rows,
        "scopes": result.scopes,
        "values_written": result.written,
        "query_ms": round(query_seconds * 1000, 1),
        "pass_ms": round(pass_seconds * 1000, 1),
        "pass_x_query": round(ratio(pass_seconds, query_seconds), 2),
        "pass_us_per_scope": round(pass_seconds / max(result.scopes, 1) * 1e6, 1),
        "peak_python_heap_mb": round(peak / 2**20, 1),
        "redis_bytes_per_scope": round(per_scope),
        "redis_bytes_per_scope_all": round(per_scope_all),
        **{f"pass_ms_{row['workers']}_workers": row["pass_ms"] for row in by_workers},
        **{
            f"worker_peak_rss_mb_{row['workers']}_workers": row["worker_peak_rss_mb"]
            for row in by_workers
        },
        **({"shards": by_workers[0]["shards"]} if by_workers else {}),
    }


def table(rows: list[dict[str, Any]]) -> str:
    """The results as a Markdown table."""
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(f"{row[c]:,}" for c in columns) + " |" for row in rows]
    return "\n".join(lines)


@click.command()
@click.option("--emails", type=int, default=1_000_000, show_default=True)
@click.option(
    "--accounts", type=int, multiple=True, default=(1_000, 10_000, 100_000), show_default=True
)
@click.option("--repeats", type=int, default=3, show_default=True)
@click.option(
    "--workers",
    type=int,
    multiple=True,
    help="Also time the sharded pass across this many Celery workers (repeatable).",
)
@exits_on_sigterm
def main(emails: int, accounts: tuple[int, ...], repeats: int, workers: tuple[int, ...]) -> None:
    """Print, per account count, the every-scope pass against the query alone (JSON, then a
    Markdown table). DATABASE_URL names the PostgreSQL server; the database is the bench's."""
    settings = Settings.from_env()
    rows = []
    for count in accounts:
        click.echo(f"{count:,} accounts, {emails:,} emails", err=True)
        rows.append(measure(settings, count, emails, repeats, workers))
    click.echo(json.dumps(rows, indent=2))
    click.echo(table(rows))


if __name__ == "__main__":
    main()
