"""Measure the reader: hit latency against a raw GET, a cold stampede, and reads with Redis down.

    DATABASE_URL=postgresql://... REDIS_URL=redis://... python -m dashcache.bench.reader_latency

Uses the configured database (seed it first: `dashcache seed`) and Redis under key prefixes of
its own, deleted afterwards; the Redis-down part starts a `redis-server` of its own and pauses it.
Prints medians and ratios; nothing is asserted.
"""

from __future__ import annotations

import json
import multiprocessing
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import Any

import click
import redis
from sqlalchemy import event

from dashcache.bench.shutdown import exits_on_sigterm
from dashcache.config import Settings
from dashcache.keys import Kind
from dashcache.logging import configure_logging
from dashcache.metrics import close_all
from dashcache.reader import DashboardReader
from dashcache.reader.breaker import CircuitBreaker
from dashcache.redis_server import RedisServer


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p99 of `samples`, in microseconds."""
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1e6, p99 * 1e6


def round_ratios(raw: list[float], reader: list[float], rounds: int) -> str:
    """The reader/raw p50 ratio of each of `rounds` consecutive slices of interleaved samples:
    their median, and the lowest and highest (a busy neighbour moves single rounds, not all)."""
    size = max(1, len(raw) // rounds)
    ratios = sorted(
        statistics.median(reader[i : i + size]) / statistics.median(raw[i : i + size])
        for i in range(0, size * rounds, size)
    )
    return (
        f"median of {rounds} rounds' p50 ratios {statistics.median(ratios):.3f} "
        f"({ratios[0]:.3f}-{ratios[-1]:.3f})"
    )


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def bench_hits(settings: Settings, requests: int, rounds: int = 10) -> None:
    """Reader hits against GET + json.loads of the same key, interleaved in one loop (the
    order alternating), in `rounds` rounds."""
    reader = DashboardReader.from_settings(settings)
    client = reader.store.client
    reader.get_aggregates()
    cases: list[tuple[str, Kind, Callable[[], object]]] = [
        ("aggregates", Kind.AGGREGATES, reader.get_aggregates),
        ("breakdown", Kind.BREAKDOWN, lambda: reader.get_category_breakdown(limit=10)),
    ]
    try:
        for name, kind, read in cases:
            key = reader.store.keys.value(kind, None)
            size = len(client.get(key) or b"")

            def raw(key: str = key) -> object:
                return json.loads(client.get(key))  # type: ignore[arg-type]

            for _ in range(200):
                raw()
                read()
            raw_times, reader_times = [], []
            for i in range(requests):
                pair = (raw, read) if i % 2 else (read, raw)
                first, second = timed(pair[0]), timed(pair[1])
                raw_times.append(first if pair[0] is raw else second)
                reader_times.append(second if pair[0] is raw else first)
            raw_p50, raw_p99 = percentiles(raw_times)
            hit_p50, hit_p99 = percentiles(reader_times)
            print(
                f"hit {name:<10} ({size} B, {requests} reads): "
                f"GET+json.loads p50 {raw_p50:.1f} us p99 {raw_p99:.1f} us | "
                f"reader p50 {hit_p50:.1f} us p99 {hit_p99:.1f} us | "
                f"p50 ratio {hit_p50 / raw_p50:.3f} | "
                + round_ratios(raw_times, reader_times, rounds)
            )
    finally:
        reader.close()


def cold_reader(env: dict[str, str], start: Barrier, results: Queue[Any]) -> None:
    """One process: connect, wait for all, read the cold all-accounts scope once; report back
    the statements it ran against `emails` (counted at the database layer) and the outcome."""
    settings = Settings.from_env(env)
    configure_logging(settings)
    reader = DashboardReader.from_settings(settings)
    queries: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if "FROM emails" in statement:
            queries.append(statement)

    event.listen(reader.engine, "before_cursor_execute", count)
    reader.store.client.ping()
    start.wait()
    started = time.perf_counter()
    try:
        outcome: str = reader.get_aggregates().source
    except Exception as error:  # reported, not raised: the parent prints every outcome
        outcome = type(error).__name__
    results.put((len(queries), outcome, time.perf_counter() - started))
    reader.close()


def bench_stampede(settings: Settings, readers: int) -> None:
    """`readers` processes miss one key at the same moment; count the database computations."""
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Barrier(readers)
    results: Queue[Any] = spawn.Queue()
    processes = [
        spawn.Process(target=cold_reader, args=(settings.to_env(), start, results))
        for _ in range(readers)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join()
    computations = sum(count for count, _, _ in outcomes)
    sources = {name: [o for _, o, _ in outcomes].count(name) for _, name, _ in outcomes}
    slowest = max(seconds for _, _, seconds in outcomes) * 1000
    print(
        f"stampede: {readers} processes read one cold key at once -> {computations} "
        f"database computation(s); outcomes {sources}; slowest read {slowest:.0f} ms"
    )


def bench_redis_down(settings: Settings, requests: int) -> None:
    """Per-read latency with a paused Redis, without a breaker and with one."""
    server = RedisServer().start()
    down = replace(settings, redis_url=server.url)
    no_breaker = DashboardReader.from_settings(down, CircuitBreaker(10**9, reset_seconds=3600))
    with_breaker = DashboardReader.from_settings(down)
    try:
        with_breaker.get_aggregates()
        with_breaker.get_aggregates()
        server.pause()
        timeout_ms = settings.redis_timeout_seconds * 1000
        for name, reader in (("breaker never opens", no_breaker), ("breaker", with_breaker)):
            samples = [timed(reader.get_aggregates) for _ in range(requests)]
            p50, p99 = percentiles(samples)
            waited = sum(1 for s in samples if s * 1000 >= 0.9 * timeout_ms)
            print(
                f"redis paused, {name:<19} ({requests} reads): p50 {p50 / 1000:.1f} ms "
                f"p99 {p99 / 1000:.1f} ms; {waited} read(s) waited on the "
                f"{timeout_ms:.0f} ms Redis timeout"
            )
    finally:
        server.resume()
        no_breaker.close()
        with_breaker.close()
        server.stop()


def delete_prefix(settings: Settings) -> None:
    client = redis.Redis.from_url(settings.redis_url)
    keys = list(client.scan_iter(match=f"{settings.key_prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@click.command()
@click.option("--requests", default=5000, show_default=True, help="Hit reads per case.")
@click.option("--readers", default=50, show_default=True, help="Processes in the stampede.")
@click.option("--down-requests", default=50, show_default=True, help="Reads with Redis down.")
@click.option("--hit-rounds", default=10, show_default=True, help="Rounds the hit reads form.")
@click.option("--hits-only", is_flag=True, help="Only the hit latency.")
@exits_on_sigterm
def main(requests: int, readers: int, down_requests: int, hit_rounds: int, hits_only: bool) -> None:
    """Print the reader's hit latency, stampede computations and Redis-down latency."""
    base = Settings.from_env()
    configure_logging(base)
    run = uuid.uuid4().hex[:8]
    hits = replace(base, key_prefix=f"bench-{run}-hits")
    cold = replace(base, key_prefix=f"bench-{run}-cold")
    down = replace(base, key_prefix=f"bench-{run}-down")
    print(f"database {base.database_url.split('@')[-1]}, redis {base.redis_url.split('@')[-1]}")
    try:
        bench_hits(hits, requests, hit_rounds)
        if not hits_only:
            bench_stampede(cold, readers)
            bench_redis_down(down, down_requests)
    finally:
        close_all()  # flush the metric counts now, not into the deleted prefixes at exit
        for settings in (hits, cold, down):
            delete_prefix(settings)


if __name__ == "__main__":
    main()
