"""Measure the asyncio reader: hits against raw redis.asyncio, the example app under uvicorn in
three modes, and the event loop's lag while the reader misses, bypasses and meets a hung Redis.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
    REDIS_URL=redis://127.0.0.1:6379/13 python -m dashcache.bench.async_reader \\
        [--emails N] [--seconds N]

Creates (and drops) a PostgreSQL database of its own on DATABASE_URL's server, seeded once with
`--emails` emails; uses REDIS_URL under key prefixes of its own, deleted afterwards. Prints
medians, p99s and ratios; nothing is asserted.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import click
import redis

from dashcache.async_reader import AsyncDashboardReader
from dashcache.bench.database import bench_database
from dashcache.bench.reader_latency import percentiles, round_ratios
from dashcache.bench.shutdown import exits_on_sigterm
from dashcache.config import Settings
from dashcache.errors import DashcacheError
from dashcache.keys import KeySchema, Kind
from dashcache.metrics import close_all
from dashcache.reader import DashboardReader
from dashcache.redis_server import SilentPort, free_port

ROOT = Path(__file__).resolve().parent.parent
COLD_READERS = 50


async def bench_hits(settings: Settings, requests: int, rounds: int = 10) -> None:
    """Reader hits against `GET` + `json.loads` of the same key, interleaved in one loop (the
    order alternating), in `rounds` rounds."""
    async with AsyncDashboardReader.from_settings(settings) as reader:
        await reader.get_aggregates()
        client = reader.client
        cases: list[tuple[str, Kind, Callable[[], Awaitable[object]]]] = [
            ("aggregates", Kind.AGGREGATES, reader.get_aggregates),
            ("breakdown", Kind.BREAKDOWN, lambda: reader.get_category_breakdown(limit=10)),
        ]
        for name, kind, read in cases:
            key = reader.store.keys.value(kind, None)

            async def raw(key: str = key) -> object:
                return json.loads(await client.get(key))  # type: ignore[arg-type]

            for _ in range(200):
                await raw()
                await read()
            raw_times: list[float] = []
            reader_times: list[float] = []
            for i in range(requests):
                for call, times in ((raw, raw_times), (read, reader_times))[:: 1 if i % 2 else -1]:
                    started = time.perf_counter()
                    await call()
                    times.append(time.perf_counter() - started)
            raw_p50, _ = percentiles(raw_times)
            hit_p50, hit_p99 = percentiles(reader_times)
            print(
                f"async hit {name:<10} ({requests} reads): redis.asyncio GET+json.loads p50 "
                f"{raw_p50:.1f} us | reader p50 {hit_p50:.1f} us p99 {hit_p99:.1f} us | "
                f"p50 ratio {hit_p50 / raw_p50:.3f} | "
                + round_ratios(raw_times, reader_times, rounds)
            )


async def lag_while(work: Callable[[], Awaitable[object]]) -> tuple[float, float, float]:
    """p50 and p99 lag (ms) of a coroutine sleeping 1 ms in a loop while `work` runs; its time."""
    lags: list[float] = []
    done = asyncio.Event()

    async def probe() -> None:
        while not done.is_set():
            started = time.perf_counter()
            await asyncio.sleep(0.001)
            lags.append(time.perf_counter() - started - 0.001)

    prober = asyncio.create_task(probe())
    started = time.perf_counter()
    try:
        await work()
    finally:
        done.set()
        await prober
    p50, p99 = percentiles(lags)
    return p50 / 1000, p99 / 1000, time.perf_counter() - started


async def swallow(read: Awaitable[object]) -> str:
    try:
        value = await read
    except DashcacheError as error:
        return type(error).__name__
    return str(getattr(value, "source", "?"))


def computations_elsewhere(env: dict[str, str], seconds: float) -> None:
    """Another process: DASHCACHE_COMPUTE_LIMIT threads computing fresh values for `seconds`."""
    settings = Settings.from_env(env)
    reader = DashboardReader.from_settings(settings)
    end = time.monotonic() + seconds

    def compute() -> None:
        while time.monotonic() < end:
            reader.get_aggregates(fresh=True)

    threads = [threading.Thread(target=compute) for _ in range(settings.compute_limit)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    reader.close()


async def bench_machine_baseline(settings: Settings, seconds: float) -> None:
    """Loop lag of an idle loop while another process runs the computations: the share of the
    lag that comes from the machine (PostgreSQL on the same cores), not from the reader."""
    other = multiprocessing.get_context("spawn").Process(
        target=computations_elsewhere, args=(settings.to_env(), seconds)
    )
    other.start()
    await asyncio.sleep(1)  # its start-up is not part of the load
    p50, p99, _ = await lag_while(lambda: asyncio.to_thread(other.join))
    print(
        f"loop lag, baseline: idle loop while another process computes "
        f"{settings.compute_limit} at a time: p50 {p50:.2f} ms p99 {p99:.2f} ms"
    )


async def bench_loop_lag(settings: Settings, rounds: int) -> None:
    """Loop lag while 50 coroutines miss a cold key, during a fresh=True storm, with Redis hung."""
    client = redis.Redis.from_url(settings.redis_url)
    keys = KeySchema(settings.key_prefix)
    async with AsyncDashboardReader.from_settings(settings) as reader:
        print(
            "loop lag, idle: p50 {:.2f} ms p99 {:.2f} ms".format(
                *await lag_while(lambda: asyncio.sleep(2))
            )
        )

        async def cold(rounds: int = rounds) -> list[str]:
            outcomes: list[str] = []
            for _ in range(rounds):
                client.delete(keys.value(Kind.AGGREGATES, None), keys.value(Kind.BREAKDOWN, None))
                reads = (swallow(reader.get_aggregates()) for _ in range(COLD_READERS))
                outcomes += await asyncio.gather(*reads)
            return outcomes

        async def storm() -> list[str]:
            outcomes: list[str] = []
            for _ in range(rounds):
                reads = (swallow(reader.get_aggregates(fresh=True)) for _ in range(COLD_READERS))
                outcomes += await asyncio.gather(*reads)
            return outcomes

        scenarios: list[tuple[str, Callable[[], Awaitable[list[str]]]]] = [
            ("cold key, 50 coroutines, connection pool empty, 1 round", lambda: cold(1)),
            (f"cold key, 50 coroutines x {rounds} rounds", cold),
            (f"fresh=True storm, 50 coroutines x {rounds} rounds", storm),
        ]
        for name, work in scenarios:
            results: list[str] = []

            async def run(
                work: Callable[[], Awaitable[list[str]]] = work, results: list[str] = results
            ) -> None:
                results.extend(await work())

            p50, p99, seconds = await lag_while(run)
            counts = {o: results.count(o) for o in sorted(set(results))}
            print(
                f"loop lag, {name}: p50 {p50:.2f} ms p99 {p99:.2f} ms "
                f"({seconds:.1f} s; reads {counts})"
            )
    client.close()
    with SilentPort() as hung:
        hung_settings = replace(settings, redis_url=hung.url)
        async with AsyncDashboardReader.from_settings(hung_settings) as reader:
            outcomes: list[str] = []

            async def hung_reads() -> None:
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:
                    reads = (swallow(reader.get_aggregates()) for _ in range(COLD_READERS))
                    outcomes.extend(await asyncio.gather(*reads))

            p50, p99, seconds = await lag_while(hung_reads)
            counts = {o: outcomes.count(o) for o in sorted(set(outcomes))}
            print(
                f"loop lag, Redis hung (accepts, never answers), 50 coroutines, {seconds:.1f} s: "
                f"p50 {p50:.2f} ms p99 {p99:.2f} ms (reads {counts})"
            )


async def load(port: int, clients: int, seconds: float) -> tuple[int, int, list[float]]:
    """`clients` keep-alive connections requesting the stats route for `seconds`: (ok, failed,
    latencies)."""
    request = b"GET /api/dashboard/stats HTTP/1.1\r\nHost: bench\r\n\r\n"
    latencies: list[float] = []
    failed = 0
    end = time.monotonic() + seconds

    async def client() -> None:
        nonlocal failed
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.monotonic() < end:
                started = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                if head.startswith(b"HTTP/1.1 200"):
                    latencies.append(time.perf_counter() - started)
                else:
                    failed += 1
        finally:
            writer.close()

    await asyncio.gather(*(client() for _ in range(clients)))
    return len(latencies), failed, latencies


def bench_web(settings: Settings, workers: int, clients: int, seconds: float) -> None:
    """The example app under uvicorn with each repository: requests/s and p99 latency."""
    for mode in ("async", "sync", "live"):
        port = free_port()
        env = {**os.environ, **settings.to_env(), "DASHCACHE_BENCH_MODE": mode}
        env["DASHCACHE_LOG_LEVEL"] = "WARNING"
        server = subprocess.Popen(  # noqa: S603 (our own interpreter and arguments)
            [sys.executable, "-m", "uvicorn", "dashcache.bench.async_web_app:app",
             "--port", str(port), "--workers", str(workers), "--log-level", "warning",
             "--no-access-log"],
            cwd=ROOT, env=env,
        )  # fmt: skip
        try:
            asyncio.run(wait_for_port(port))
            asyncio.run(load(port, clients, min(2.0, seconds)))  # warm: connections, cache
            ok, failed, latencies = asyncio.run(load(port, clients, seconds))
        finally:
            server.terminate()
            server.wait(timeout=30)
        _, p99 = percentiles(latencies) if latencies else (0.0, 0.0)
        print(
            f"web {mode:<5} ({workers} uvicorn workers, {clients} clients, {seconds:.0f} s): "
            f"{ok / seconds:.0f} requests/s, p99 {p99 / 1000:.1f} ms, {failed} failed"
        )


async def wait_for_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


def delete_prefix(settings: Settings) -> None:
    client = redis.Redis.from_url(settings.redis_url)
    patterns = (f"{settings.key_prefix}*", f"_kombu.*.{settings.key_prefix}.*")
    keys = [key for pattern in patterns for key in client.scan_iter(match=pattern, count=1000)]
    if keys:
        client.delete(*keys)
    client.close()


@click.command()
@click.option("--emails", default=1_000_000, show_default=True, help="Emails seeded once.")
@click.option("--accounts", default=1000, show_default=True)
@click.option("--requests", default=5000, show_default=True, help="Hit reads per case.")
@click.option("--rounds", default=3, show_default=True, help="Cold / fresh rounds of 50 reads.")
@click.option("--seconds", default=10.0, show_default=True, help="Load per web mode.")
@click.option("--clients", default=64, show_default=True)
@click.option("--workers", default=2, show_default=True, help="uvicorn worker processes.")
@click.option("--no-web", is_flag=True, help="Skip the example app under uvicorn.")
@click.option("--hit-rounds", default=10, show_default=True, help="Rounds the hit reads form.")
@click.option("--hits-only", is_flag=True, help="Only the hit latency.")
@exits_on_sigterm
def main(
    emails: int, accounts: int, requests: int, rounds: int, seconds: float, clients: int,
    workers: int, no_web: bool, hit_rounds: int, hits_only: bool,
) -> None:  # fmt: skip
    """Print the asyncio reader's hit latency, loop lag and the example app's throughput."""
    base = Settings.from_env()
    run = uuid.uuid4().hex[:8]
    with bench_database(base.database_url, accounts, categories=20) as database:
        started = time.monotonic()
        database.grow_to(emails)
        print(f"seeded {database.rows} emails in {time.monotonic() - started:.0f} s")
        settings = replace(
            base, database_url=database.url, key_prefix=f"bench-{run}-async", refresh_seconds=3600
        )
        settings = replace(settings, ttl_seconds=7 * 86400)
        try:
            asyncio.run(bench_hits(settings, requests, hit_rounds))
            if hits_only:
                return
            asyncio.run(bench_loop_lag(settings, rounds))
            asyncio.run(bench_machine_baseline(settings, seconds))
            delete_prefix(settings)
            if not no_web:
                bench_web(settings, workers, clients, seconds)
        finally:
            close_all()
            delete_prefix(settings)


if __name__ == "__main__":
    main()
