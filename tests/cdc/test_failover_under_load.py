"""Redis fails over under load: raw SQL commits through the WAL source, app events published as
the app commits, and readers in other processes, while the primary is killed -9, then while the
promoted primary is paused (`DEBUG SLEEP`) as writes go on; the same for a lone Redis restarted
empty. After each, with no scheduled pass (beat runs, its period is a day): every number of every
scope equals a fresh count within 60 s, no read took longer than its deadlines allow, every read
error was a dashcache error, and worker, beat and WAL consumer still run."""

from __future__ import annotations

import multiprocessing
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import Engine, text

from dashcache.config import Settings
from dashcache.errors import DashcacheError
from dashcache.events import EventPublisher
from dashcache.models import Email
from dashcache.reader import DashboardReader
from dashcache.redis_server import RedisServer
from dashcache.store import make_redis
from tests.cdc.walhelpers import consuming, exact, scopes, seed, warm
from tests.eventing import Settled, tracked_sessions
from tests.helpers import wait_until
from tests.processes import Process, beat_process, worker_process
from tests.sentinels import SentinelTopology

spawn = multiprocessing.get_context("spawn")
EXACT_WITHIN = 60.0
"""Every number of every scope equals a fresh count this long after each fault."""
READERS = 2


def read_until_stopped(env: dict[str, str], stop: Any, results: Any) -> None:
    """Read every scope over and over until `stop` is set; put (longest read in seconds, the
    type names of the errors that were not dashcache errors, reads, typed errors)."""
    reader = DashboardReader.from_settings(Settings.from_env(env))
    longest, untyped, reads, typed = 0.0, [], 0, 0
    while not stop.is_set():
        for scope in (None, 1, 2, 3):
            started = time.monotonic()
            try:
                reader.get_aggregates(account_id=scope)
                reader.get_category_breakdown(limit=10, account_id=scope)
            except DashcacheError:
                typed += 1
            except Exception as error:  # the property under test: none of these
                untyped.append(type(error).__name__)
            longest = max(longest, time.monotonic() - started)
            reads += 1
        time.sleep(0.02)
    reader.close()
    results.put((longest, untyped, reads, typed))


class Load:
    """Raw SQL commits (the WAL source's) and app events (tracked ORM commits) in threads while
    `writing()`, and readers in processes of their own from `start()` to `stop()`."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.publisher = EventPublisher(settings)
        self.sessions = tracked_sessions(engine, self.publisher, deltas=True)
        self.stop_writes = threading.Event()
        self.stop_reads = spawn.Event()
        self.results: Any = spawn.Queue()
        self.readers = [
            spawn.Process(
                target=read_until_stopped, args=(settings.to_env(), self.stop_reads, self.results)
            )
            for _ in range(READERS)
        ]
        self.commits = 0

    def start(self) -> None:
        for process in self.readers:
            process.start()

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Both writers run through the block; it ends once they stopped (none may hang)."""
        self.stop_writes.clear()
        writers = [threading.Thread(target=w, daemon=True) for w in (self._raw_sql, self._app)]
        for thread in writers:
            thread.start()
        try:
            wait_until(lambda: self.commits > 20, "the load to run", seen=lambda: self.commits)
            yield
        finally:
            self.stop_writes.set()
            for thread in writers:
                thread.join(timeout=60)
        assert not any(thread.is_alive() for thread in writers), "a writer hung"
        self.publisher.flush(timeout=60)

    def stop(self) -> list[tuple[float, list[str], int, int]]:
        """Stop the readers; what each saw."""
        self.stop_reads.set()
        seen = [self.results.get(timeout=120) for _ in self.readers]
        for process in self.readers:
            process.join(timeout=60)
        self.publisher.close()
        return seen

    def _raw_sql(self) -> None:
        rng = random.Random(7)
        while not self.stop_writes.is_set():
            account = rng.randint(1, 3)
            with self.engine.begin() as conn:
                if rng.random() < 0.5:
                    conn.execute(
                        text(
                            "UPDATE emails SET is_unread = NOT is_unread WHERE id = (SELECT id"
                            " FROM emails WHERE account_id = :a ORDER BY random() LIMIT 1)"
                        ),
                        {"a": account},
                    )
                else:
                    conn.execute(
                        text(
                            "INSERT INTO emails (message_id, account_id, category_id, is_unread,"
                            " is_auto_labeled, created_at, updated_at)"
                            " VALUES (:m, :a, :c, true, false, now(), now())"
                        ),
                        {"m": f"<raw-{time.time_ns()}@x>", "a": account, "c": rng.randint(1, 4)},
                    )
            self.commits += 1
            time.sleep(0.03)

    def _app(self) -> None:
        rng = random.Random(11)
        while not self.stop_writes.is_set():
            now = datetime.now(UTC)
            with self.sessions.begin() as session:  # a failed publish is logged, never raised
                session.add(
                    Email(
                        message_id=f"<app-{time.time_ns()}@x>",
                        account_id=rng.randint(1, 3),
                        category_id=rng.randint(1, 4),
                        is_unread=rng.random() < 0.5,
                        is_auto_labeled=False,
                        created_at=now,
                        updated_at=now,
                    )
                )
            self.commits += 1
            time.sleep(0.1)


def wait_exact_after(client: redis.Redis, settings: Settings, engine: Engine, since: float) -> None:
    """Every value exact within EXACT_WITHIN of `since` (a Redis error is shown, not raised)."""

    def now_exact() -> object:
        try:
            return exact(client, settings, engine, scopes(engine))
        except redis.RedisError as error:
            return Settled(f"{type(error).__name__}: {error}")

    wait_until(
        now_exact,
        "every number of every scope to equal a fresh count",
        timeout=max(since + EXACT_WITHIN - time.monotonic(), 1.0),
    )


def check_reads(seen: list[tuple[float, list[str], int, int]], settings: Settings) -> None:
    """No read hung: each took at most what its deadlines allow; every error was typed."""
    bound = (
        settings.wait_seconds + 2 * settings.db_timeout_seconds + 4 * settings.redis_timeout_seconds
    )
    for longest, untyped, reads, _ in seen:
        assert reads > 0, seen
        assert untyped == [], f"reads raised errors that are not dashcache errors: {untyped}"
        assert longest < bound, f"a read took {longest:.1f} s (bound {bound:.1f} s): {seen}"


@contextmanager
def deployment(settings: Settings, beat_file: Path) -> Iterator[tuple[Process, Process]]:
    """Worker, beat and the WAL consumer, running through the block."""
    with (
        worker_process(settings) as worker,
        beat_process(settings, beat_file) as beat,
        consuming(settings),
    ):
        yield worker, beat


def under_load(settings: Settings) -> Settings:
    """No scheduled pass within the test; short Redis timeouts, as a web process would set."""
    return replace(
        settings,
        refresh_seconds=86400,
        redis_timeout_seconds=1.0,
        wait_seconds=10.0,
        db_timeout_seconds=5.0,
    )


def test_primary_killed_then_promoted_primary_paused_under_load(
    cdc_settings: Settings, wal_engine: Engine, topology: SentinelTopology, tmp_path: Path
) -> None:
    """Kill -9 of the primary, then a `DEBUG SLEEP` of the promoted one, under load: exact
    within 60 s of each, no hung or untyped read, every process still running."""
    settings = under_load(
        replace(cdc_settings, redis_url=topology.url(0), broker_url=topology.url(1))
    )
    seed(wal_engine)
    warm(settings)
    client = make_redis(settings.redis_url, 5.0)
    load = Load(settings, wal_engine)
    try:
        with deployment(settings, tmp_path / "beat") as (worker, beat):
            load.start()
            with load.writing():
                topology.kill_primary()
                promoted = time.monotonic()
                time.sleep(3)  # writes go on against the promoted primary
            wait_exact_after(client, settings, wal_engine, promoted)
            with load.writing():
                sleeper = redis.Redis(port=topology.replica.port, socket_timeout=30)
                try:
                    sleeper.execute_command("DEBUG", "SLEEP", "3")
                finally:
                    sleeper.close()
                paused = time.monotonic()
                time.sleep(2)
            wait_exact_after(client, settings, wal_engine, paused)
            assert worker.popen.poll() is None, "the worker exited"
            assert beat.popen.poll() is None, "beat exited"
    finally:
        seen = load.stop()
        client.close()
    check_reads(seen, settings)


def test_lone_redis_restarted_empty_under_load(
    cdc_settings: Settings, wal_engine: Engine, tmp_path: Path
) -> None:
    """A lone Redis (cache and broker) restarted with nothing under load: exact within 60 s,
    no hung or untyped read, worker, beat and WAL consumer still running."""
    with RedisServer() as server:
        settings = under_load(replace(cdc_settings, redis_url=server.url, broker_url=server.url))
        seed(wal_engine)
        warm(settings)
        client = redis.Redis.from_url(server.url)
        load = Load(settings, wal_engine)
        try:
            with deployment(settings, tmp_path / "beat") as (worker, beat):
                load.start()
                with load.writing():
                    server.stop()
                    time.sleep(1)
                    server.start()
                    restarted = time.monotonic()
                    time.sleep(3)
                wait_exact_after(client, settings, wal_engine, restarted)
                assert worker.popen.poll() is None, "the worker exited"
                assert beat.popen.poll() is None, "beat exited"
        finally:
            seen = load.stop()
            client.close()
    check_reads(seen, settings)
