"""The scheduled pass split into shards: same values as one process, markers, retries, fencing."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
import redis
from sqlalchemy import Engine, text

from dashcache import clock
from dashcache.bench.launcher import worker_args
from dashcache.config import Settings
from dashcache.dispatch import WARM_ALL, TaskSender
from dashcache.keys import KeySchema, Kind, Scope
from dashcache.passes import PassMarkers, ShardTask, last_pass, shard_ranges
from dashcache.reader import DashboardReader
from dashcache.recompute import RecomputeResult, recompute_every_scope
from dashcache.store import RedisStore, Write, Written
from dashcache.worker import tasks
from dashcache.worker.app import app
from dashcache.worker.runtime import reset_runtime, runtime
from tests.helpers import NOW, Row, add_categories, add_emails, wait_until
from tests.observe.test_health import invoke as invoke_cli
from tests.processes import Process, celery_process

ACCOUNTS = range(1, 11)


@pytest.fixture
def shard_settings(settings: Settings) -> Settings:
    """Three account ids per shard, so ten accounts make four shards (and the all-accounts one)."""
    return replace(settings, shard_accounts=3)


@pytest.fixture
def eager(shard_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tasks run in this process (sent shards too), with the settings of `shard_settings`."""
    for name, value in shard_settings.to_env().items():
        monkeypatch.setenv(name, value)
    reset_runtime()
    app.conf.task_always_eager = True
    try:
        yield
    finally:
        app.conf.task_always_eager = False
        reset_runtime()


def seed(pg: Engine) -> None:
    """Ten accounts with a few emails each, in two categories."""
    add_categories(pg, ["work", "news"])
    rows = [
        Row(account, 1 + (n % 2), n % 3 == 0, n % 2 == 0, NOW)
        for account in ACCOUNTS
        for n in range(account % 4 + 1)
    ]
    add_emails(pg, rows)


def values(client: redis.Redis, keys: KeySchema, scopes: Sequence[Scope]) -> dict[str, Any]:
    """Every value's data (its JSON without generation and time) of the given scopes."""
    found = {}
    for scope in scopes:
        for kind in Kind:
            raw = client.get(keys.value(kind, scope))
            found[":".join(keys.value(kind, scope).split(":")[-2:])] = (
                raw and json.loads(raw)["data"]
            )
    return found


def test_shard_ranges_are_aligned() -> None:
    """Ranges are cut on multiples of the shard size, so a shard keeps its ids across passes."""
    assert shard_ranges(4, 11, 3) == [(3, 6), (6, 9), (9, 12)]
    assert shard_ranges(0, 0, 10) == [(0, 10)]


def test_sharded_pass_equals_one_process_pass(
    pg: Engine, shard_settings: Settings, redis_client: redis.Redis, eager: None
) -> None:
    """warm_all's shards write exactly the values a one-process pass writes, emptied ones too."""
    seed(pg)
    scopes: list[Scope] = [None, *ACCOUNTS, 40]
    one = RedisStore(redis_client, KeySchema(f"{shard_settings.key_prefix}-one"), 600)
    one.client.sadd(one.keys.scopes, "a40")
    sharded_keys = KeySchema(shard_settings.key_prefix)
    redis_client.sadd(sharded_keys.scopes, "a40")
    try:
        recompute_every_scope(pg, one, shard_settings.max_breakdown)
        sent = tasks.warm_all.apply().get()
        assert sent == 1 + len(shard_ranges(1, 40, 3))
        expected = values(redis_client, one.keys, scopes)
        assert expected["agg:a40"]["total_emails"] == 0
        assert values(redis_client, sharded_keys, scopes) == expected
        record = last_pass(redis_client, sharded_keys)
        assert record is not None
        assert record["shards"] == sent
        assert record["scopes"] == len(scopes)
        generations = {
            json.loads(redis_client.get(sharded_keys.value(kind, scope)) or b"{}")["generation"]
            for kind in Kind
            for scope in scopes
        }
        assert generations == {record["generation"]}
    finally:
        stale = list(redis_client.scan_iter(f"{one.keys.prefix}:*"))
        redis_client.delete(*stale)


def test_failing_shard_is_retried_alone(
    pg: Engine, shard_settings: Settings, redis_client: redis.Redis
) -> None:
    """With a real worker: a shard whose write fails (one of its accounts' delta logs is a key of
    the wrong type) is retried by itself while every other shard is written once; once the fault
    is gone its retry writes it."""
    seed(pg)
    keys = KeySchema(shard_settings.key_prefix)
    broken = keys.deltas(4)
    redis_client.set(broken, "not a delta log")
    with celery_process(shard_settings, *worker_args(1), ready="ready") as worker:
        failed = json.loads(worker.wait_for('"recompute.failed"', timeout=60))
        written = [None, *(a for a in ACCOUNTS if a not in range(3, 6))]
        wait_until(
            lambda: all(redis_client.get(keys.value(Kind.BREAKDOWN, a)) for a in written),
            "the other shards written",
            60,
        )
        redis_client.delete(broken)
        wait_until(
            lambda: redis_client.get(keys.value(Kind.AGGREGATES, 4)) is not None,
            "the failed shard written by its retry",
            60,
        )
        wait_until(lambda: last_pass(redis_client, keys) is not None, "the pass recorded", 60)
    assert failed["scope"] == "shard:3"
    assert "WRONGTYPE" in failed["error"]
    lines = [json.loads(line) for line in worker.lines if line.startswith("{")]
    failures = {line["scope"] for line in lines if line.get("event") == "recompute.failed"}
    assert failures == {"shard:3"}
    finished = [line["scope"] for line in lines if line.get("event") == "shard.finished"]
    assert sorted(finished) == sorted({*finished})  # every shard written once
    data = values(redis_client, keys, [None, *ACCOUNTS])
    assert data["agg:a4"]["total_emails"] == 1


def test_a_later_pass_skips_shards_still_outstanding(
    shard_settings: Settings, redis_client: redis.Redis
) -> None:
    """A shard still queued from the previous pass is not sent again; once it finishes, it is."""
    keys = KeySchema(shard_settings.key_prefix)
    markers = PassMarkers(redis_client, keys, shard_settings)
    first = [ShardTask(1, None, None), ShardTask(1, 0, 3)]
    assert markers.send(1, first, clock.now(), lambda shard: None) == first
    second = [ShardTask(2, None, None), ShardTask(2, 0, 3), ShardTask(2, 3, 6)]
    assert markers.send(2, second, clock.now(), lambda shard: None) == [second[2]]
    assert not markers.renew(ShardTask(2, 0, 3))  # a doubled message of the later pass
    assert markers.renew(first[1])
    assert markers.finish(first[0], RecomputeResult(1, NOW, {}, 2, 0, 1), clock.now()) is None
    assert markers.finish(first[1], RecomputeResult(1, NOW, {}, 4, 2, 3), clock.now()) == {
        "at": mock.ANY,
        "duration_ms": mock.ANY,
        "scopes": 4,
        "shards": 2,
        "idle_dropped": 0,
        "generation": 1,
        "outcome": "fenced",
        "written": 6,
        "fenced": 2,
    }
    third = [ShardTask(3, 0, 3)]
    assert markers.send(3, third, clock.now(), lambda shard: None) == third


class PausedStore(RedisStore):
    """A store whose first write runs `meanwhile` first: a later shard overtaking this one."""

    meanwhile: Any = None

    def write_checked(self, writes: Sequence[Write]) -> Written:
        run, self.meanwhile = self.meanwhile, None
        if run is not None:
            run()
        return super().write_checked(writes)


def test_overlapping_periods_are_fenced(
    pg: Engine, settings: Settings, redis_client: redis.Redis
) -> None:
    """A shard of an earlier pass that writes after the same shard of a later pass is fenced."""
    seed(pg)
    keys = KeySchema(settings.key_prefix)
    slow = PausedStore(redis_client, keys, 600)
    later = RedisStore(redis_client, keys, 600)
    shard = range(3, 6)
    recompute_every_scope(pg, later, settings.max_breakdown, accounts=shard)

    first_pass = later.take_ticket()

    def later_pass() -> None:
        with pg.begin() as conn:
            conn.execute(text("DELETE FROM emails WHERE account_id = 4"))
        second_pass = later.take_ticket()
        recompute_every_scope(
            pg, later, settings.max_breakdown, accounts=shard, generation=second_pass
        )

    slow.meanwhile = later_pass
    early = recompute_every_scope(
        pg, slow, settings.max_breakdown, accounts=shard, generation=first_pass
    )
    assert early.fenced == early.scopes * 2
    data = values(redis_client, keys, [4])
    assert data["agg:a4"]["total_emails"] == 0
    stored = json.loads(redis_client.get(keys.value(Kind.AGGREGATES, 4)) or b"{}")
    assert stored["generation"] == first_pass + 1
    assert redis_client.get(keys.value(Kind.AGGREGATES, None)) is None


def shard_lines(process: Process, since: int) -> list[str]:
    """The shard runs a worker logged after its `since`-th line."""
    return [line for line in process.lines[since:] if "shard.finished" in line]


def test_two_workers_each_run_shards_of_one_pass(
    pg: Engine, settings: Settings, redis_client: redis.Redis
) -> None:
    """Two real workers consume the shards of one pass between them, and every value is right."""
    seed(pg)
    sharded = replace(settings, shard_accounts=1)
    keys = KeySchema(sharded.key_prefix)
    with (
        celery_process(sharded, *worker_args(1), "-n", "one@%h", ready="ready") as one,
        celery_process(sharded, *worker_args(1), "-n", "two@%h", ready="ready") as two,
    ):
        # Each worker sends a pass at start-up: wait until both were sent and all shards are over.
        wait_until(
            lambda: sum("pass.sent" in line for line in one.lines + two.lines) == 2,
            "the start-up passes",
        )
        wait_until(
            lambda: not list(redis_client.scan_iter(keys.shard_marker("*"))),
            "the start-up passes' shards",
        )
        marks = len(one.lines), len(two.lines)
        sender = TaskSender(sharded)
        sender.send(WARM_ALL, [], sharded.schedule_queue)
        sender.close()
        shards = 1 + len(ACCOUNTS)
        wait_until(
            lambda: len(shard_lines(one, marks[0])) + len(shard_lines(two, marks[1])) >= shards,
            "every shard of the pass",
            timeout=60,
        )
        ran = shard_lines(one, marks[0]), shard_lines(two, marks[1])
    assert ran[0]
    assert ran[1]
    assert len(ran[0]) + len(ran[1]) == shards
    data = values(redis_client, keys, [None, *ACCOUNTS])
    assert data["agg:all"]["total_emails"] == sum(account % 4 + 1 for account in ACCOUNTS)


def test_idle_account_drops_out_and_rejoins_after_a_read(
    pg: Engine,
    shard_settings: Settings,
    redis_client: redis.Redis,
    eager: None,
    reader: DashboardReader,
) -> None:
    """An account nobody read for the idle days is left out of the pass (its values no longer
    rewritten, its scope no longer warmed); a read computes it through the fallback and the next
    pass warms it again."""
    seed(pg)
    keys = KeySchema(shard_settings.key_prefix)
    tasks.warm_all.apply().get()
    stale = clock.now() - timedelta(days=shard_settings.idle_days + 1)
    redis_client.zadd(keys.reads, {"2": stale.timestamp()})
    before = json.loads(redis_client.get(keys.value(Kind.AGGREGATES, 2)) or b"{}")
    tasks.warm_all.apply().get()
    record = last_pass(redis_client, keys)
    assert record is not None
    assert record["idle_dropped"] == 1
    assert json.loads(redis_client.get(keys.value(Kind.AGGREGATES, 2)) or b"{}") == before
    assert not redis_client.sismember(keys.scopes, "a2")
    assert (
        json.loads(redis_client.get(keys.value(Kind.AGGREGATES, 3)) or b"{}")["generation"]
        == record["generation"]
    )
    redis_client.delete(keys.value(Kind.AGGREGATES, 2), keys.value(Kind.BREAKDOWN, 2))
    served = reader.get_aggregates(2)
    assert (served.source, served.data["total_emails"]) == ("fallback", 2 % 4 + 1)
    tasks.warm_all.apply().get()
    again = last_pass(redis_client, keys)
    assert again is not None
    assert again["idle_dropped"] == 0
    stored = json.loads(redis_client.get(keys.value(Kind.BREAKDOWN, 2)) or b"{}")
    assert stored["generation"] == again["generation"]


def test_stats_json_shows_the_last_pass(
    pg: Engine, shard_settings: Settings, redis_client: redis.Redis, eager: None
) -> None:
    """`dashcache stats --json` has `last_pass` null before the first pass, then the contract's
    fields with their types."""
    seed(pg)
    assert invoke(shard_settings, "stats", "--json")["last_pass"] is None
    tasks.warm_all.apply().get()
    runtime().metrics.flush()
    body = invoke(shard_settings, "stats", "--json")
    last = body["last_pass"]
    assert set(last) == {"at", "duration_ms", "scopes", "shards", "idle_dropped", "generation"}
    assert isinstance(last["at"], str)
    assert isinstance(last["duration_ms"], float)
    assert (last["scopes"], last["shards"], last["idle_dropped"]) == (11, 5, 0)
    assert isinstance(last["generation"], int)
    assert body["pass_scopes"] == {"warmed": 11, "idle_dropped": 0}


def invoke(settings: Settings, *args: str) -> dict[str, Any]:
    """The JSON a `dashcache` subcommand printed."""
    result = invoke_cli(settings, *args)
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.output))
