"""Redis restarted under a running worker and beat: both reconnect and the keys are warm again."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import redis
from sqlalchemy import Engine

from shared.config import Settings
from shared.keys import KeySchema, Kind
from shared.redis_server import RedisServer
from tests.helpers import NOW, Row, add_categories, add_emails, wait_until
from tests.processes import Process, beat_process, worker_process
from tests.test_worker import wait_for_value


def noticed_outage(beat: Process) -> bool:
    """True once beat logged a Redis error: on its lock and schedule, or while sending a task."""
    signs = ("beat.redis_unavailable", "beat: Connection error")
    return any(sign in line for line in beat.lines for sign in signs)


def test_redis_restart_needs_no_process_restart(
    settings: Settings, pg: Engine, tmp_path: Path
) -> None:
    """After Redis loses everything in a restart, beat re-leads and the worker warms every key."""
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
        client = redis.Redis.from_url(server.url)
        try:
            with worker_process(own) as worker, beat_process(own, tmp_path / "beat") as beat:
                wait_for_value(client, key, [["work", 1]])
                server.stop()
                wait_until(lambda: noticed_outage(beat), "beat to notice the outage", 20)
                server.start()
                assert client.get(key) is None
                add_emails(pg, [Row(1, 1, True, False, NOW)])
                wait_for_value(client, key, [["work", 2]], timeout=60)
                leading = beat.lines_with("beat.leading", 2)
                assert worker.popen.poll() is None
                assert beat.popen.poll() is None
        finally:
            client.close()
    assert [json.loads(line)["event"] for line in leading] == ["beat.leading"] * len(leading)
