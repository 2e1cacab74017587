"""Read-path cost of metrics: median cache-hit latency with metrics on and off, interleaved.

    make bench        # or: .venv/bin/python -m dashcache.bench.metrics_overhead [READS]

Uses the Redis of REDIS_URL under a key prefix of its own (deleted at the end) and a throwaway
SQLite file (a hit never touches the database). Prints medians and their ratio; asserts nothing.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import timeit
import uuid
from dataclasses import replace

from dashcache.bench.shutdown import exits_on_sigterm
from dashcache.config import Settings
from dashcache.db import init_db, make_engine
from dashcache.keys import KeySchema, Kind
from dashcache.metrics import Metrics
from dashcache.reader import DashboardReader
from dashcache.store import RedisStore, make_redis


@exits_on_sigterm
def main(reads: int) -> None:
    """Time `reads` hits per mode, alternating modes read by read, and print the medians."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = replace(
            Settings.from_env(),
            database_url=f"sqlite:///{tmp}/bench.db",
            key_prefix=f"bench-{uuid.uuid4().hex[:8]}",
        )
        keys = KeySchema(settings.key_prefix)
        client = make_redis(settings.redis_url, settings.redis_timeout_seconds)
        store = RedisStore(client, keys, settings.ttl_seconds)
        engine = make_engine(settings.database_url)
        init_db(engine)
        on = Metrics(make_redis(settings.redis_url, 1.0), keys, flush_seconds=1.0)
        off = Metrics(client, keys, flush_seconds=0)
        readers = {
            "on": DashboardReader(settings, store, engine, on),
            "off": DashboardReader(settings, store, engine, off),
        }
        try:
            readers["on"].get_aggregates()  # the one miss: warms the key
            latencies = _interleaved(readers, reads)
            record = timeit.repeat(lambda: on.record_read(Kind.AGGREGATES, "hit"), number=10_000)
            record_ns = min(record) / 10_000 * 1e9
        finally:
            on.close()
            client.delete(*client.scan_iter(match=f"{settings.key_prefix}:*"))
            client.close()
            engine.dispose()
    median_on = statistics.median(latencies["on"])
    median_off = statistics.median(latencies["off"])
    print(f"cache hits per mode: {reads} (interleaved)")
    print(f"median hit latency, metrics off: {median_off:.1f} us")
    print(f"median hit latency, metrics on:  {median_on:.1f} us")
    print(f"ratio on/off: {median_on / median_off:.3f}")
    print(f"record_read alone: {record_ns:.0f} ns per call")


def _interleaved(readers: dict[str, DashboardReader], reads: int) -> dict[str, list[float]]:
    latencies: dict[str, list[float]] = {name: [] for name in readers}
    order = list(readers)
    for _ in range(reads):
        order.reverse()
        for name in order:
            started = time.perf_counter_ns()
            readers[name].get_aggregates()
            latencies[name].append((time.perf_counter_ns() - started) / 1000)
    return latencies


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
