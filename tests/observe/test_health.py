"""`dashcache health` and `dashcache stats`: each failing check fails the probe, and only it."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import timedelta

import pytest
import redis
from click.testing import CliRunner, Result
from sqlalchemy import Engine

from dashcache import clock
from dashcache.cli import main
from dashcache.config import Settings
from dashcache.keys import KeySchema, Kind
from dashcache.metrics import Metrics
from dashcache.observe.freshness import freshness_from
from dashcache.observe.health import schedule_check
from dashcache.redis_server import RedisServer
from dashcache.store import Envelope, RedisStore, Write, make_redis
from tests.helpers import NOW

CLOSED_DB = "postgresql+psycopg2://postgres@127.0.0.1:1/none"


def invoke(settings: Settings, *args: str) -> Result:
    """Run the CLI in process; restore the root log handlers it points at the runner's stderr."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        return CliRunner().invoke(main, list(args), env=settings.to_env())
    finally:
        root.handlers[:], root.level = handlers, level


def write_value(settings: Settings, age_seconds: float, account_id: int | None = None) -> None:
    """Store both kinds of a scope, computed `age_seconds` ago."""
    client = make_redis(settings.redis_url, 5.0)
    store = RedisStore(client, KeySchema(settings.key_prefix), settings.ttl_seconds)
    computed_at = clock.now() - timedelta(seconds=age_seconds)
    envelope = Envelope({"total_emails": 1}, computed_at, store.take_ticket())
    store.write([Write(kind, account_id, envelope) for kind in Kind])
    client.close()


def record_run(settings: Settings, age_seconds: float) -> None:
    """Note a successful scheduled run `age_seconds` ago, flushed."""
    metrics = Metrics(make_redis(settings.redis_url, 5.0), KeySchema(settings.key_prefix), 60)
    metrics.record_scheduled_run(clock.now() - timedelta(seconds=age_seconds))
    metrics.close()


@pytest.fixture
def healthy(settings: Settings, pg: Engine) -> Settings:
    """Settings of a deployment that passes every check."""
    write_value(settings, age_seconds=5)
    record_run(settings, age_seconds=5)
    return settings


def failed_lines(result: Result) -> list[str]:
    assert result.exit_code == 1, result.output
    return result.output.splitlines()


def test_healthy_exits_zero(healthy: Settings) -> None:
    """With Redis and the database answering, a recent run and fresh values, health exits 0."""
    result = invoke(healthy, "health")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(
        "ok: redis: answers; writes go to 127.0.0.1:6379; database: answers;"
    )


def test_no_scheduled_run_fails(settings: Settings) -> None:
    """Without any scheduled run recorded, only the schedule check fails."""
    write_value(settings, age_seconds=5)
    assert failed_lines(invoke(settings, "health")) == [
        "schedule: no successful scheduled run recorded"
    ]


def test_late_scheduled_run_fails() -> None:
    """A last run more than two periods ago fails; one within two periods passes."""
    assert not schedule_check(NOW - timedelta(seconds=121), NOW, refresh_seconds=60).ok
    assert schedule_check(NOW - timedelta(seconds=119), NOW, refresh_seconds=60).ok


def test_old_value_fails(healthy: Settings) -> None:
    """One value older than the soft age fails the freshness check and names it."""
    write_value(healthy, age_seconds=healthy.soft_age + 30, account_id=4)
    (line,) = failed_lines(invoke(healthy, "health"))
    assert line.startswith("freshness: 2 values older than the soft age (120 s)")
    assert "of a4" in line


def test_database_down_fails(healthy: Settings) -> None:
    """An unreachable database fails the database check only."""
    (line,) = failed_lines(invoke(replace(healthy, database_url=CLOSED_DB), "health"))
    assert line.startswith("database: cannot reach the database:")


def test_redis_down_fails(healthy: Settings) -> None:
    """A stopped Redis fails its check, and the checks that need it say they were not run."""
    with RedisServer() as server:
        down = replace(healthy, redis_url=server.url, redis_timeout_seconds=0.5)
        server.stop()
        lines = failed_lines(invoke(down, "health"))
    assert [line.split(":")[0] for line in lines] == ["redis", "schedule", "freshness"]
    assert lines[0].startswith("redis: cannot reach Redis:")


def test_freshness_counts_missing_and_picks_oldest() -> None:
    """Absent or unreadable values are missing; the oldest readable one is reported."""
    raws = [
        Envelope({}, NOW - timedelta(seconds=30), 1).to_json(),
        None,
        Envelope([], NOW - timedelta(seconds=90), 1).to_json(),
        b"not json",
    ]
    freshness = freshness_from(["a1", "all"], raws, NOW)
    assert freshness.scopes_warmed == 2
    assert freshness.missing == 2
    assert freshness.oldest is not None
    assert (freshness.oldest.scope, freshness.oldest.kind) == ("all", "aggregates")
    assert freshness.oldest.age_seconds == 90


def test_stats_reports_counts_ages_and_last_run(healthy: Settings) -> None:
    """`stats --json` gives the counts, hit ratio, oldest value and last run; the table too."""
    metrics = Metrics(redis.Redis.from_url(healthy.redis_url), KeySchema(healthy.key_prefix), 60)
    for outcome in ("hit", "hit", "hit", "miss", "fallback"):
        metrics.record_read(Kind.AGGREGATES, outcome)  # type: ignore[arg-type]
    metrics.record_recompute("fallback", "written", 0.5)
    metrics.close()
    result = invoke(healthy, "stats", "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["hit_ratio"] == 0.75
    assert body["reads"]["aggregates"] == {
        "hit": 3,
        "miss": 1,
        "fallback": 1,
        "fresh": 0,
        "stale": 0,
        "error": 0,
    }
    assert body["recomputes"]["fallback"]["written"] == 1
    assert body["recomputes"]["fallback"]["mean_seconds"] == 0.5
    assert body["scopes_warmed"] == 1
    assert body["oldest"]["scope"] == "all"
    assert body["oldest"]["age_seconds"] >= 5
    assert body["last_scheduled_run"] is not None
    table = invoke(healthy, "stats").output
    assert "75.0% of 4 lookups" in table
    assert "aggregates    3     1         1" in table
