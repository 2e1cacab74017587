"""The status page's data and HTML: read from the contracted keys, escaped, masked, and
answering while Redis is down."""

from __future__ import annotations

import json
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import redis
from click.testing import CliRunner

from dashcache import clock
from dashcache.cli import main
from dashcache.cli.observe import status_serve
from dashcache.config import Settings
from dashcache.keys import KeySchema, Kind
from dashcache.metrics import SERIES_SECONDS, Metrics
from dashcache.observe.status import percentile
from dashcache.observe.statuspage import page
from dashcache.observe.statusserver import StatusSource, make_server
from dashcache.redis_server import RedisServer

HOSTILE = "<img src=x onerror=alert(1)>"


@contextmanager
def serving(settings: Settings) -> Iterator[str]:
    """The status server in this process on a free port; yields its host:port."""
    source = StatusSource(settings)
    server = make_server(source, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        source.close()


def get(address: str, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://{address}{path}", timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_json_reads_the_contracted_keys(settings: Settings, redis_client: redis.Redis) -> None:
    """The WAL consumer's hash, the per-minute series, beat's schedule, dead letters and the
    broker's queue lists all show in /status.json."""
    keys = KeySchema(settings.key_prefix)
    now = clock.timestamp()
    minute = int(now) // 60 * 60
    redis_client.hset(
        keys.cdc_status,
        mapping={"slot": "s", "publication": "p", "confirmed_lsn": "0/1", "lag_seconds": "0.25",
                 "retained_bytes": "2048", "consumer": "h:1", "updated_at": str(now)},
    )  # fmt: skip
    redis_client.set(keys.series("cdc_lag_ms", minute - 120), 70, ex=60)
    redis_client.set(keys.series("events_received", minute - 60), 5, ex=60)
    redis_client.set(keys.series("events_received", minute), 2, ex=60)
    redis_client.zadd(keys.beat_schedule, {f"{keys.beat}warm-every-scope": now + 42})
    redis_client.lpush(keys.dead_letters, json.dumps({"reason": "r", "payload": "[]"}), b"\xff")
    redis_client.lpush(settings.schedule_queue, "m1", "m2")
    redis_client.lpush(settings.events_queue + "\x06\x163", "m3")

    with serving(settings) as url:
        status, text = get(url, "/status.json")
    body = json.loads(text)
    assert status == 200
    assert body["cdc"]["lag_seconds"] == 0.25
    assert body["cdc"]["retained_bytes"] == 2048
    assert body["cdc"]["active_consumer"] == "h:1"
    assert body["events"]["per_minute"]["received"] == {
        "last_minute": 5, "this_minute": 2, "last_hour": 7,
    }  # fmt: skip
    assert body["events"]["lag_ms_max_last_hour"] == 70
    assert body["series"]["cdc_lag_ms"][-3] == 70
    assert len(body["series"]["minutes"]) == 60
    assert 40 <= body["schedule"]["next_due_in_seconds"] <= 42
    assert body["dead_letters"]["total"] == 2
    assert body["dead_letters"]["latest"][0]["reason"] == "unreadable entry"
    assert body["queues"]["schedule"] == 2
    assert body["queues"]["events"] == 1


def test_nothing_running_reads_as_not_running(settings: Settings) -> None:
    """Before any pass, consumer or beat the page says so instead of showing numbers."""
    with serving(settings) as url:
        _, text = get(url, "/")
        _, raw = get(url, "/status.json")
    body = json.loads(raw)
    assert body["cdc"] is None
    assert body["schedule"]["next_due"] is None
    assert "WAL source: not running" in text
    assert "no pass yet" in text


def test_every_data_string_is_escaped() -> None:
    """Hostile strings in every place data reaches the page come out as text, never markup."""
    data = _data(HOSTILE)
    html = page(data)
    assert "<img" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert html.count("&lt;img") >= 6


def test_pass_and_drift_by_trigger_render_from_the_report() -> None:
    """A report with `last_pass` and `drift_by_trigger` (issues 20 and 17) shows them."""
    html = page(_data("ok"))
    assert 'data-field="schedule.last_pass.shards">4<' in html
    assert 'data-field="schedule.last_pass.idle_dropped">9<' in html
    assert "drift by trigger" in html


def test_secrets_are_masked(settings: Settings) -> None:
    """URL passwords never reach the page or the JSON."""
    secret = replace(
        settings,
        redis_url=settings.redis_url.replace("redis://", "redis://:hunter2@"),
        broker_url="amqp://guest:hunter2@127.0.0.1:5672//",
    )
    with serving(secret) as url:
        pages = [get(url, path)[1] for path in ("/", "/status.json")]
    assert all("hunter2" not in text and "***" in text for text in pages)


def test_redis_down_answers_503_with_the_reason(settings: Settings) -> None:
    """With Redis stopped, / and /status.json answer 503 saying Redis is unreachable."""
    with RedisServer() as own:
        down = replace(settings, redis_url=own.url, broker_url=own.url)
        own.stop()
        with serving(down) as url:
            page_status, text = get(url, "/")
            json_status, raw = get(url, "/status.json")
    assert page_status == json_status == 503
    assert "Redis unreachable" in text
    assert json.loads(raw)["redis"] == "unreachable"


def test_a_hung_redis_is_reported_not_waited_for(settings: Settings) -> None:
    """With Redis paused (connections hang) both paths still answer, 503 and unreachable."""
    with RedisServer() as own:
        hung = replace(settings, redis_url=own.url, broker_url=own.url)
        own.pause()
        try:
            with serving(hung) as url:
                page_status, text = get(url, "/")
                json_status, raw = get(url, "/status.json")
        finally:
            own.resume()
    assert page_status == json_status == 503
    assert "Redis unreachable" in text
    assert "Timeout" in json.loads(raw)["error"]


def test_only_known_paths_are_served(settings: Settings) -> None:
    """Anything but /, /panels and /status.json is a 404; responses forbid foreign scripts."""
    with serving(settings) as url:
        assert get(url, "/admin")[0] == 404
        with urllib.request.urlopen(f"http://{url}/", timeout=30) as response:
            policy = response.headers["Content-Security-Policy"]
    assert "script-src 'sha256-" in policy
    assert "unsafe-inline" not in policy


def test_status_serve_binds_loopback_by_default() -> None:
    """The command listens on 127.0.0.1 unless --addr says otherwise."""
    defaults = {param.name: param.default for param in status_serve.params}
    assert defaults == {"addr": "127.0.0.1", "port": 9109}


def test_flush_adds_event_counts_to_the_minute_series(
    settings: Settings, redis_client: redis.Redis
) -> None:
    """One flush INCRBYs received, applied and event-recomputed counts into this minute's keys."""
    keys = KeySchema(settings.key_prefix)
    metrics = Metrics(redis.Redis.from_url(settings.redis_url), keys, flush_seconds=60)
    metrics.record_event("received", 4)
    metrics.record_event("applied", 3)
    metrics.record_recompute("event", "written", 0.01)
    metrics.record_recompute("event", "fenced", 0.01)
    metrics.record_recompute("schedule", "written", 0.01)
    minute = int(clock.timestamp()) // 60 * 60
    metrics.close()
    names = ("events_received", "events_applied", "events_recomputed")
    found = {}
    for name in names:
        key = next(k for k in (keys.series(name, minute), keys.series(name, minute + 60))
                   if redis_client.exists(k))  # fmt: skip
        found[name] = int(redis_client.get(key))  # type: ignore[arg-type]
        assert 0 < redis_client.ttl(key) <= SERIES_SECONDS
    assert found == {"events_received": 4, "events_applied": 3, "events_recomputed": 2}


def test_percentile_is_nearest_rank() -> None:
    """p50 and p99 of a sorted list pick an element of it; empty gives None."""
    ages = [float(n) for n in range(1, 101)]
    assert (percentile(ages, 50), percentile(ages, 99), percentile([], 50)) == (50.0, 99.0, None)
    assert percentile([7.0], 99) == 7.0


def _data(text: str) -> dict[str, Any]:
    """A full status body with `text` in every string that comes from data."""
    stats: dict[str, Any] = {
        "scopes_warmed": 1, "values_missing": 0, "last_scheduled_run": None,
        "events": {"received": 1, "applied": 1},
    }  # fmt: skip
    per_minute = {"last_minute": 1, "this_minute": 0, "last_hour": 1}
    return {
        "redis": "ok",
        "now": text,
        "settings": {"redis_url": text, "broker_url": text, "key_prefix": text,
                     "soft_age_seconds": 120, "refresh_seconds": 60},
        "stats": stats,
        "values": {Kind.AGGREGATES.name.lower(): {
            "count": 1, "age_p50_seconds": 1.0, "age_p99_seconds": 1.0,
            "oldest_seconds": 1.0, "past_soft_age": 0}},
        "schedule": {"last_pass": {"at": text, "duration_ms": 12.5, "scopes": 3, "shards": 4,
                                   "idle_dropped": 9, "generation": 5},
                     "last_scheduled_run": None, "next_due": text, "next_due_in_seconds": 3},
        "events": {"totals": {"received": 1, "applied": 1}, "lag_ms_max_last_hour": None,
                   "recomputed_total": 1,
                   "per_minute": dict.fromkeys(("received", "applied", "recomputed"),
                                               per_minute)},
        "cdc": {"slot": text, "publication": text, "confirmed_lsn": text, "lag_seconds": 0.1,
                "retained_bytes": 10, "active_consumer": text, "updated_at": text},
        "drift": {text: 1},
        "drift_by_trigger": {text: {text: 1}},
        "dead_letters": {"total": 1, "latest": [
            {"rejected_at": text, "reason": text, "field": text, "payload": text}]},
        "queues": {"broker": text, "error": text, "schedule": None, "events": 3},
        "series": {"minutes": [0, 60], "cdc_lag_ms": [None, 1.0], "events_received": [1, 2],
                   "events_applied": [0, 1], "events_recomputed": [None, 0]},
    }  # fmt: skip


def test_a_taken_port_is_a_clear_error(settings: Settings) -> None:
    """`status serve` on a port something else holds says so and exits 1, no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = str(taken.getsockname()[1])
        result = CliRunner().invoke(
            main, ["status", "serve", "--port", port], env=settings.to_env()
        )
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.output


def test_a_silent_consumer_and_an_overdue_beat_are_flagged() -> None:
    """A WAL status not written for a minute, and a run overdue by more than a period, show
    as problems rather than as numbers."""
    data = _data("x")
    data["now"] = "2026-12-04T05:00:00+00:00"
    data["cdc"]["updated_at"] = "2026-12-04T04:59:00+00:00"
    data["schedule"]["next_due_in_seconds"] = -300
    html = page(data)
    assert "(60.0 s ago): the consumer is not writing" in html
    assert "overdue by 300 s" in html
