"""Redis restarted under a running worker, beat and readers: the processes reconnect, the keys are
warm again, and readers answer from the database (or raise CacheUnavailable) meanwhile."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import redis
from sqlalchemy import Engine

from dashcache.config import Settings
from dashcache.errors import CacheUnavailable, DashcacheError
from dashcache.keys import KeySchema, Kind
from dashcache.reader import DashboardReader
from dashcache.redis_server import RedisServer
from tests.helpers import NOW, Row, add_categories, add_emails, wait_until
from tests.processes import Process, beat_process, worker_process
from tests.readers import ReadLoop
from tests.worker.test_worker import wait_for_value


def noticed_outage(beat: Process) -> bool:
    """True once beat logged a Redis error: on its lock and schedule, or while sending a task."""
    signs = ("beat.redis_unavailable", "beat: Connection error")
    return any(sign in line for line in beat.lines for sign in signs)


def answer_from_cache(loops: tuple[ReadLoop, ...], data: dict[str, int]) -> bool:
    """True once the latest read of every loop came from the cache with `data`."""
    latest = [loop.outcomes[-1].value if loop.outcomes else None for loop in loops]
    return all(value and (value.source, value.data) == ("cache", data) for value in latest)


def test_redis_restart_needs_no_process_restart(
    settings: Settings, pg: Engine, tmp_path: Path
) -> None:
    """After Redis loses everything in a restart, beat re-leads and the worker warms every key;
    meanwhile readers answer from the database, or raise CacheUnavailable when so configured,
    each read within the reader's deadline, and they use the cache again once it is back."""
    add_categories(pg, ["work"])
    add_emails(pg, [Row(1, 1, True, False, NOW)])
    with RedisServer() as server:
        own = replace(
            settings,
            redis_url=server.url,
            broker_url=server.url,
            refresh_seconds=1,
            ttl_seconds=60,
        )
        key = KeySchema(own.key_prefix).value(Kind.BREAKDOWN, 1)
        sentinel = f"{own.key_prefix}:test:sentinel"
        client = redis.Redis.from_url(server.url)
        fast = replace(own, redis_timeout_seconds=0.2, breaker_reset_seconds=0.3, wait_seconds=5)
        serving = DashboardReader.from_settings(fast)
        strict = DashboardReader.from_settings(replace(fast, on_redis_down="error"))
        try:
            with (
                worker_process(own) as worker,
                beat_process(own, tmp_path / "beat") as beat,
                ReadLoop(lambda: serving.get_category_breakdown(account_id=1)) as database,
                ReadLoop(lambda: strict.get_category_breakdown(account_id=1)) as error,
            ):
                wait_for_value(client, key, [["work", 1]])
                beat.wait_for("beat.leading", timeout=60)  # its first lead, before the outage
                client.set(sentinel, "before the restart")
                server.stop()
                database.phase = error.phase = "down"
                wait_until(lambda: noticed_outage(beat), "beat to notice the outage", 60)
                wait_until(lambda: len(error.during("down")) >= 3, "reads while Redis is down", 60)
                # A loop reads one at a time: once each has a read started after "down", every
                # read started in "down" has ended, all of them while Redis was stopped.
                database.phase = error.phase = "restarting"
                wait_until(
                    lambda: all(loop.during("restarting") for loop in (database, error)),
                    "every read started while Redis was down to end",
                    60,
                )
                server.start()
                database.phase = error.phase = "back"
                assert client.get(sentinel) is None
                add_emails(pg, [Row(1, 1, True, False, NOW)])
                wait_for_value(client, key, [["work", 2]], timeout=60)
                leading = beat.lines_with("beat.leading", 2, timeout=60)
                both = (database, error)
                wait_until(
                    lambda: answer_from_cache(both, {"work": 2}), "reads from cache again", 60
                )
                assert worker.popen.poll() is None
                assert beat.popen.poll() is None
        finally:
            serving.close()
            strict.close()
            client.close()
    assert [json.loads(line)["event"] for line in leading] == ["beat.leading"] * len(leading)
    down = database.during("down")
    answers = [(o.value.source, o.value.data) if o.value else o.error for o in down]
    assert answers == [("fallback", {"work": 1})] * len(down)
    assert down
    assert all(isinstance(o.error, CacheUnavailable) for o in error.during("down"))
    everything = database.outcomes + error.outcomes
    assert all(o.error is None or isinstance(o.error, DashcacheError) for o in everything)
    assert max(o.seconds for o in down + error.during("down")) < fast.wait_seconds
