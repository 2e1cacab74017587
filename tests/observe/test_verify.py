"""`dashcache verify`: every warmed value against a computation as of its own computed_at."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine

from dashcache import clock
from dashcache.cli.support import EXIT_DIFFERENT
from dashcache.config import Settings
from dashcache.keys import KeySchema, Kind
from dashcache.observe.verify import diff
from dashcache.recompute import snapshot, to_data
from dashcache.stats import compute_every_scope
from dashcache.store import Envelope, RedisStore, Write, make_redis
from tests.cli.test_cli import run
from tests.helpers import Row, add_categories, add_emails


def test_diff_names_each_differing_leaf() -> None:
    """Equal values give nothing; each differing leaf, list length or type is named by path."""
    same = {"a": 1, "b": {"c": [["x", 2]]}}
    assert list(diff(same, same)) == []
    cached = {"a": 1, "b": {"c": [["x", 2]], "d": 1.0}, "e": [1]}
    fresh = {"a": 2, "b": {"c": [["x", 3]], "d": 1}, "e": [1, 2]}
    assert list(diff(cached, fresh)) == [
        ("data.a", 1, 2),
        ("data.b.c[0][1]", 2, 3),
        ("data.b.d", 1.0, 1),
        ("data.e", [1], [1, 2]),
    ]


def store_as_of(settings: Settings, engine: Engine, hours_ago: float) -> RedisStore:
    """Write every scope's values computed as of `hours_ago` hours ago, as a worker would have."""
    store = RedisStore(
        make_redis(settings.redis_url, 5.0), KeySchema(settings.key_prefix), settings.ttl_seconds
    )
    as_of = clock.now() - timedelta(hours=hours_ago)
    generation = store.take_ticket()
    with snapshot(engine) as session:
        stats = compute_every_scope(session, as_of, settings.max_breakdown)
    store.write(
        [
            Write(kind, scope, Envelope(to_data(scope_stats, kind), as_of, generation))
            for scope, scope_stats in stats.items()
            for kind in Kind
        ]
    )
    return store


def test_verify_passes_on_old_values_and_prints_each_difference(
    settings: Settings, pg: Engine
) -> None:
    """Values from a day ago verify clean though growth moved since; a later email is reported."""
    now = clock.now()
    add_categories(pg, ["work", "news"])
    near_boundary = now - timedelta(days=7, hours=12)
    add_emails(pg, [Row(1, 1, True, False, near_boundary), Row(2, 2, False, True, now)])
    store = store_as_of(settings, pg, hours_ago=24)
    aggregates = store.get(Kind.AGGREGATES, 1)
    assert aggregates is not None
    assert aggregates.data["weekly_growth"]["emails"] == 1
    code, out, _ = run(settings, "verify")
    assert (code, out) == (0, "checked 6 values: 0 differ, 0 missing\n")

    add_emails(pg, [Row(1, 2, True, False, now - timedelta(days=30))])
    store.client.delete(store.keys.value(Kind.BREAKDOWN, 2))
    code, out, _ = run(settings, "verify")
    store.client.close()
    keys = KeySchema(settings.key_prefix)
    assert code == EXIT_DIFFERENT
    assert f"{keys.value(Kind.AGGREGATES, 1)} data.total_emails: cached 1, fresh 2" in out
    assert f"{keys.value(Kind.BREAKDOWN, None)} data[0][1]: cached 1, fresh 2" in out
    assert out.endswith("checked 5 values: 4 differ, 1 missing\n")
