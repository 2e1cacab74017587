"""The status page in a real browser (headless Chromium) against a running deployment: real
Redis, PostgreSQL, worker and beat; the WAL consumer's keys written as issue 19's consumer does."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from selenium import webdriver
from sqlalchemy import Engine

from dashcache import clock
from dashcache.bench.launcher import celery_env
from dashcache.config import Settings
from dashcache.events import EventPublisher
from dashcache.events.ingest import ingest
from dashcache.keys import KeySchema
from dashcache.models import Email
from dashcache.redis_server import RedisServer
from tests.eventing import tracked_sessions
from tests.helpers import NOW, Row, add_categories, add_emails
from tests.observe.browser import chromium, shown_fields, status_server
from tests.processes import beat_process, worker_process

RUNS = ("written", "fenced", "error")
HOSTILE = '<img src=x onerror="window.__xss=1">'
DEADLINE = 60.0
SCREENSHOT = os.environ.get("DASHCACHE_STATUS_SCREENSHOT")
"""Where to keep the page's screenshot (docs/status.png is made this way); default: tmp_path."""


@pytest.fixture(scope="module")
def browser() -> Any:
    """One headless Chromium for the module."""
    with chromium() as driver:
        yield driver


def stats_json(settings: Settings) -> dict[str, Any]:
    dashcache = str(Path(sys.executable).with_name("dashcache"))
    done = subprocess.run(
        [dashcache, "stats", "--json"], env=celery_env(settings), capture_output=True, check=True
    )
    body: dict[str, Any] = json.loads(done.stdout)
    return body


def expected_fields(stats: dict[str, Any]) -> dict[str, str]:
    """What the page must show for the numbers `dashcache stats --json` printed."""
    return {
        "stats.scopes_warmed": str(stats["scopes_warmed"]),
        "stats.values_missing": str(stats["values_missing"]),
        "events.totals.received": str(stats["events"]["received"]),
        "events.totals.applied": str(stats["events"]["applied"]),
        "events.totals.recomputed": str(sum(stats["recomputes"]["event"][o] for o in RUNS)),
        **{f"drift.{kind}": str(count) for kind, count in stats["drift"].items()},
    }


def converge(driver: webdriver.Chrome, done: Any, what: str) -> dict[str, str]:
    """Poll the page as it refreshes itself until `done(shown)` holds; fail naming `what`."""
    deadline = time.monotonic() + DEADLINE
    shown: dict[str, str] = {}
    while time.monotonic() < deadline:
        shown = shown_fields(driver)
        if done(shown):
            return shown
        time.sleep(0.5)
    raise AssertionError(f"the page never showed {what}; it shows {shown}")


def write_wal_consumer(client: redis.Redis, keys: KeySchema) -> None:
    """The keys a running WAL consumer writes (CONTRACTS.md): its status and the lag series."""
    now = clock.timestamp()
    client.hset(
        keys.cdc_status,
        mapping={
            "slot": "dashcache_slot",
            "publication": "dashcache_pub",
            "confirmed_lsn": "0/16B3748",
            "lag_seconds": "0.042",
            "retained_bytes": "5242880",
            "consumer": "worker-1:4242",
            "updated_at": str(now),
        },
    )
    minute = int(now) // 60 * 60
    for back in range(30):
        lag = 40 + 25 * math.sin(back / 4) + (back % 3) * 4
        client.set(keys.series("cdc_lag_ms", minute - 60 * back), round(lag), ex=7200)


def next_due(client: redis.Redis, keys: KeySchema) -> str | None:
    """Beat's next due time as the page prints it, from RedBeat's schedule in Redis."""
    first = client.zrange(keys.beat_schedule, 0, 0, withscores=True)
    return datetime.fromtimestamp(first[0][1], UTC).isoformat() if first else None


def wait_for_beat_schedule(client: redis.Redis, keys: KeySchema) -> str:
    """Wait until beat has installed its schedule in Redis; its next due time."""
    deadline = time.monotonic() + DEADLINE
    while (due := next_due(client, keys)) is None:
        members = sorted(client.scan_iter(f"{keys.beat}*"))
        assert time.monotonic() < deadline, f"beat never wrote {keys.beat_schedule}; {members}"
        time.sleep(0.2)
    return due


def new_email(account: int) -> Email:
    return Email(
        message_id=f"<s{account}@t>",
        account_id=account,
        category_id=3,
        is_unread=True,
        is_auto_labeled=False,
        created_at=NOW,
        updated_at=NOW,
    )


def test_page_equals_stats_and_follows_a_pass_and_events_without_reload(
    browser: webdriver.Chrome,
    settings: Settings,
    pg: Engine,
    redis_client: redis.Redis,
    tmp_path: Path,
) -> None:
    """Numbers on the page equal `stats --json`; a pass and events show up without a reload;
    a hostile category name and dead-letter payload render as text and run no script."""
    add_categories(pg, ["work", "news", HOSTILE])
    add_emails(pg, [Row(account, 1 + account % 3, True, False, NOW) for account in range(1, 7)])
    keys = KeySchema(settings.key_prefix)
    write_wal_consumer(redis_client, keys)
    settings = replace(settings, soft_age_seconds=30)
    with status_server(settings) as url:
        browser.get(url + "/")
        browser.execute_script("window.__loaded = 'first load';")
        before = shown_fields(browser)
        assert before["schedule.last_at"] == "no pass yet"
        assert before["cdc.active_consumer"] == "worker-1:4242"
        assert before["cdc.lag"] == "42 ms"

        with worker_process(settings):
            with beat_process(settings, tmp_path / "beat"):
                # The worker's own start-up pass is a pass too: wait for beat's schedule itself.
                due = wait_for_beat_schedule(redis_client, keys)
                converge(
                    browser,
                    lambda f: (
                        "ago" in f["schedule.last_at"]
                        and f["schedule.next_due"].startswith(due + " (")
                    ),
                    f"the pass and beat's next due time {due}",
                )
            publisher = EventPublisher(settings)
            try:
                recomputed = tracked_sessions(pg, publisher)
                by_deltas = tracked_sessions(pg, publisher, deltas=True)
                for account, sessions in ((1, recomputed), (2, recomputed), (3, by_deltas)):
                    with sessions() as session:
                        session.add(new_email(account))
                        session.commit()
                bad = [
                    {"type": "categories.changed", "change": "renamed", "category_ids": [HOSTILE]}
                ]
                ingest(bad, publisher)
            finally:
                publisher.close()

            def equal_to_stats(shown: dict[str, str]) -> bool:
                stats = stats_json(settings)
                expected = expected_fields(stats)
                last_run, last_pass = stats["last_scheduled_run"], stats["last_pass"]
                return (
                    stats["events"]["received"] >= 3
                    and last_run is not None
                    and last_pass is not None
                    and shown["schedule.last_at"].startswith(last_pass["at"] + " (")
                    and shown.get("schedule.last_pass.shards") == str(last_pass["shards"])
                    and shown.get("schedule.last_pass.scopes") == str(last_pass["scopes"])
                    and shown.get("dead_letters.total") == "1"
                    and all(shown.get(name) == value for name, value in expected.items())
                )

            shown = converge(browser, equal_to_stats, "the events and numbers of stats --json")
            assert browser.execute_script("return window.__loaded") == "first load"
            assert int(shown["events.per_minute.received.last_hour"]) >= 3
            assert shown["schedule.next_due"].startswith(next_due(redis_client, keys) + " (")
            assert browser.execute_script("return window.__xss") is None
            assert browser.find_elements("css selector", "#panels img") == []
            payload = browser.find_element("css selector", "[data-field='dead_letters.payload']")
            assert json.dumps(HOSTILE)[1:-1] in payload.text  # as stored: JSON text of the batch
            reason = browser.find_element("css selector", "[data-field='dead_letters.reason']")
            assert HOSTILE in reason.text
            browser.save_screenshot(SCREENSHOT or str(tmp_path / "status.png"))


def test_redis_down_shows_unreachable_and_recovers(
    browser: webdriver.Chrome, settings: Settings
) -> None:
    """With its Redis stopped the page says "Redis unreachable" in place (the JSON is a 503),
    and shows the panels again once Redis is back, all without a reload."""
    with RedisServer() as own:
        down = replace(settings, redis_url=own.url, broker_url=own.url, redis_timeout_seconds=0.5)
        with status_server(down) as url:
            browser.get(url + "/")
            browser.execute_script("window.__loaded = 'first load';")
            converge(browser, lambda f: "stats.scopes_warmed" in f, "the panels")
            own.stop()
            converge(browser, lambda f: "redis" in f, "Redis unreachable")
            assert "Redis unreachable" in browser.find_element("id", "panels").text
            with pytest.raises(urllib.error.HTTPError) as answer:
                urllib.request.urlopen(f"{url}/status.json", timeout=30)  # noqa: S310 (http)
            assert answer.value.code == 503
            assert json.loads(answer.value.read())["redis"] == "unreachable"
            own.start()
            converge(browser, lambda f: "stats.scopes_warmed" in f, "the panels again")
            assert browser.execute_script("return window.__loaded") == "first load"
