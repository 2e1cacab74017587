"""What operators see of the WAL source: status hash, stats, health, metrics, the lag series."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import redis
from click.testing import CliRunner
from sqlalchemy import Engine

from dashcache import clock
from dashcache.cdc.status import LAG_SERIES, minute_of
from dashcache.cli.main import main
from dashcache.config import Settings
from dashcache.keys import KeySchema
from dashcache.observe.health import run_checks
from dashcache.observe.prometheus import DashcacheCollector
from tests.cdc.walhelpers import consuming, seed, sql, wait_exact, warm
from tests.helpers import wait_until

STATUS_FIELDS = {
    "slot",
    "publication",
    "confirmed_lsn",
    "lag_seconds",
    "retained_bytes",
    "consumer",
    "updated_at",
}


def test_status_stats_health_metrics_and_lag_series(
    cdc_settings: Settings, wal_engine: Engine, redis_client: redis.Redis
) -> None:
    """The active consumer's status hash, the `cdc` object of stats, the health check, the
    Prometheus families and the per-minute lag all describe the stream."""
    keys = KeySchema(cdc_settings.key_prefix)
    seed(wal_engine)
    warm(cdc_settings)
    with consuming(cdc_settings):
        sql(wal_engine, "UPDATE emails SET is_unread = NOT is_unread WHERE account_id = 1")
        sql(wal_engine, "DELETE FROM emails WHERE id = 3")
        wait_exact(redis_client, cdc_settings, wal_engine)
        wait_until(lambda: redis_client.hget(keys.metrics, "cdc_changes:delete"), "changes counted")
        status = {k.decode(): v.decode() for k, v in redis_client.hgetall(keys.cdc_status).items()}
        assert set(status) >= STATUS_FIELDS
        assert abs(float(status["updated_at"]) - time.time()) < 60
        assert float(status["lag_seconds"]) >= 0
        result = CliRunner().invoke(main, ["stats", "--json"], env=cdc_settings.to_env())
        cdc = json.loads(result.stdout)["cdc"]
        assert cdc["slot"] == cdc_settings.cdc_slot
        assert cdc["publication"] == cdc_settings.cdc_publication
        assert cdc["active_consumer"] == status["consumer"]
        assert cdc["confirmed_lsn"] == status["confirmed_lsn"]
        assert cdc["changes"] == {"insert": 0, "update": 20, "delete": 1, "truncate": 0}
        assert isinstance(cdc["retained_bytes"], int)
        checks = {
            c.name: c for c in run_checks(cdc_settings, redis_client, wal_engine, clock.now())
        }
        assert checks["cdc"].ok, checks["cdc"]
        families = {f.name: f for f in DashcacheCollector(redis_client, keys).collect()}
        assert families["dashcache_cdc_lag_seconds"].samples[0].value >= 0
        assert families["dashcache_cdc_retained_bytes"].samples[0].value >= 0
        changes = {s.labels["op"]: s.value for s in families["dashcache_cdc_changes"].samples
                   if s.name.endswith("_total")}  # fmt: skip
        assert changes == {"insert": 0, "update": 20, "delete": 1, "truncate": 0}
    minute = minute_of(time.time())
    series = [keys.series(LAG_SERIES, m) for m in (minute, minute - 60)]
    values = [redis_client.get(key) for key in series]
    assert any(v is not None and float(v) >= 0 for v in values)
    assert 0 < max(redis_client.ttl(key) for key in series) <= 7200
    redis_client.hset(keys.cdc_status, "lag_seconds", "5.0")
    strict = replace(cdc_settings, cdc_max_lag_seconds=1.0)
    checks = {c.name: c for c in run_checks(strict, redis_client, wal_engine, clock.now())}
    assert not checks["cdc"].ok
    assert "DASHCACHE_CDC_MAX_LAG_SECONDS" in checks["cdc"].detail


def test_stats_show_no_cdc_when_no_consumer_ever_ran(settings: Settings) -> None:
    """Without a WAL consumer the `cdc` object is null and health has no cdc check."""
    result = CliRunner().invoke(main, ["stats", "--json"], env=settings.to_env())
    assert json.loads(result.stdout)["cdc"] is None


def test_a_consumer_that_finds_its_lock_taken_stops_until_it_holds_it_again(
    cdc_settings: Settings, wal_engine: Engine, redis_client: redis.Redis
) -> None:
    """Another holder in the lock (this consumer stalled past its TTL, say): the consumer logs
    `cdc.lock_lost`, stops streaming and waits; once the lock is free it takes it and catches
    up from its confirmed position."""
    keys = KeySchema(cdc_settings.key_prefix)
    seed(wal_engine)
    warm(cdc_settings)
    with consuming(cdc_settings) as logs:
        redis_client.set(keys.cdc_lock, "elsewhere:1", px=60_000)
        wait_until(lambda: any(e["event"] == "cdc.lock_lost" for e in logs), "cdc.lock_lost")
        wait_until(lambda: any(e["event"] == "cdc.standby" for e in logs), "cdc.standby")
        sql(wal_engine, "UPDATE emails SET is_unread = NOT is_unread WHERE account_id = 2")
        assert [e["event"] for e in logs].count("cdc.active") == 1
        redis_client.delete(keys.cdc_lock)
        wait_exact(redis_client, cdc_settings, wal_engine)
        assert [e["event"] for e in logs].count("cdc.active") == 2
