"""The scheduled pass across real Celery workers: wall time by worker count, a worker's peak memory.

`python -m dashcache.bench.scale --workers 1 --workers 2` runs this after the in-process pass:
for each count, that many workers (one pool process each) are started on the bench's database
and a key prefix of their own; `warm_all` is sent and the pass's own record (`pass:last`, written
by its last shard) gives its wall time, from planning to the last shard. Median of repeats, after
the workers' start-up pass. Peak memory is the highest resident size (VmHWM) of a pool process.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path
from statistics import median
from typing import Any

import psutil

from dashcache.bench.launcher import Celery, worker_args
from dashcache.config import Settings
from dashcache.dispatch import WARM_ALL, TaskSender
from dashcache.keys import KeySchema
from dashcache.passes import last_pass
from dashcache.store import make_redis

PASS_TIMEOUT_SECONDS = 900


def peak_rss_mb(worker: Celery) -> float:
    """The highest peak resident size (VmHWM) among the worker's processes, in MiB."""
    peak = 0
    try:
        root = psutil.Process(worker.popen.pid)
        for process in [root, *root.children(recursive=True)]:
            status = Path(f"/proc/{process.pid}/status").read_text()
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
    except (psutil.NoSuchProcess, FileNotFoundError):
        pass
    return round(peak / 1024, 1)


def wait_for_pass(client: Any, keys: KeySchema, after: int) -> dict[str, Any]:
    """The record of the first pass with a generation above `after`."""
    deadline = time.monotonic() + PASS_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        record = last_pass(client, keys)
        if record is not None and int(str(record["generation"])) > after:
            return dict(record)
        time.sleep(0.05)
    raise RuntimeError(f"no pass finished within {PASS_TIMEOUT_SECONDS} s")


def sharded_pass(
    settings: Settings, database_url: str, workers: int, repeats: int
) -> dict[str, Any]:
    """Median wall time of the sharded pass with `workers` workers, and their peak memory."""
    run = replace(
        settings, database_url=database_url, key_prefix=f"bench-shards-{uuid.uuid4().hex[:8]}"
    )
    keys = KeySchema(run.key_prefix)
    client = make_redis(run.redis_url, 5.0)
    started: list[Celery] = []
    try:
        with tempfile.TemporaryDirectory(prefix="dashcache-shards-") as logs:
            for n in range(workers):
                log_dir = Path(logs) / f"w{n}"
                log_dir.mkdir()
                args = (*worker_args(1), "-n", f"shards{n}@%h")
                started.append(Celery(run, log_dir, *args))
            record: dict[str, Any] = wait_for_pass(client, keys, 0)  # the start-up pass
            quiet_since = time.monotonic()  # every worker sends a pass at start: let all end
            while time.monotonic() - quiet_since < 2:
                if list(client.scan_iter(keys.shard_marker("*"), count=1000)):
                    quiet_since = time.monotonic()
                time.sleep(0.1)
            record = dict(last_pass(client, keys) or record)
            durations, scopes, shards = [], 0, 0
            sender = TaskSender(run)
            for _ in range(repeats):
                sender.send(WARM_ALL, [], run.schedule_queue)
                record = wait_for_pass(client, keys, int(record["generation"]))
                durations.append(float(record["duration_ms"]))
                scopes, shards = int(record["scopes"]), int(record["shards"])
            sender.close()
            peak = max(peak_rss_mb(worker) for worker in started)
    finally:
        for worker in started:
            worker.stop()
        stale = list(client.scan_iter(f"{keys.prefix}:*", count=1000))
        for start in range(0, len(stale), 1000):
            client.delete(*stale[start : start + 1000])
        client.close()
    return {
        "workers": workers,
        "shards": shards,
        "scopes": scopes,
        "pass_ms": round(median(durations), 1),
        "worker_peak_rss_mb": peak,
    }
