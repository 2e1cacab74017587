"""Randomized convergence: seeded rounds of mutations (some never published), deltas, scheduled
and event recomputes, reader fallbacks and bypasses from several threads; afterwards every cached
value equals the database's truth, by `dashcache verify` and by a brute-force count, and a quiet
scheduled pass finds no drift."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from dashcache import clock
from dashcache.config import Settings
from dashcache.events import EventPublisher
from dashcache.keys import KeySchema, Kind, Scope
from dashcache.models import Category, Email
from dashcache.reader import DashboardReader
from dashcache.windows import floor_minute
from tests.cli.test_cli import run
from tests.eventing import markers, tracked_sessions
from tests.helpers import wait_until
from tests.processes import Process, beat_process, worker_process

SEEDS = (3, 17, 42)
ACCOUNTS = (1, 2, 3, 4)
WEEK = timedelta(days=7)
OPS_PER_THREAD = 12


def new_email(rng: random.Random, categories: list[int]) -> Email:
    """A random email, created up to three weeks ago (so both growth windows get some)."""
    created = clock.now() - timedelta(days=rng.uniform(0, 21))
    return Email(
        message_id=f"<{rng.getrandbits(64):x}@convergence>",
        account_id=rng.choice(ACCOUNTS),
        category_id=rng.choice([*categories, None]),
        is_unread=rng.random() < 0.5,
        is_auto_labeled=rng.random() < 0.3,
        created_at=created,
        updated_at=created,
    )


def mutate(factory: sessionmaker[Session], rng: random.Random, part: int) -> str:
    """One random committed change of an email whose id is `part` modulo 2 (so two threads never
    delete each other's rows), or a new email or category; `bulk` ones are statements nobody
    publishes (dropped events). Returns what it did."""
    op = rng.choice(["create", "create", "update", "move", "delete", "bulk", "category"])
    with factory.begin() as session:
        categories = list(session.scalars(select(Category.id)))
        ids = list(session.scalars(select(Email.id).where(Email.id % 2 == part)))
        email = session.get(Email, rng.choice(ids)) if ids else None
        if op == "create" or email is None:
            session.add(new_email(rng, categories))
            return "create"
        if op == "update":
            email.is_unread = not email.is_unread
            email.category_id = rng.choice([*categories, None])
        elif op == "move":
            email.account_id = rng.choice(ACCOUNTS)
        elif op == "delete":
            session.delete(email)
        elif op == "bulk" and rng.random() < 0.5:
            account = rng.choice(ACCOUNTS)
            flip = update(Email).where(Email.account_id == account)
            session.execute(flip.values(is_auto_labeled=rng.random() < 0.5))
        elif op == "bulk":
            session.execute(delete(Email).where(Email.id == email.id))
        else:
            session.add(Category(name=f"p{part}-{rng.getrandbits(64):x}"))
        return op


def read(reader: DashboardReader, rng: random.Random, cold: int) -> str:
    """One random read: plain, `fresh`, or with a `max_age`; of a warm scope or a cold one."""
    scope = rng.choice([None, *ACCOUNTS, cold])
    options: dict[str, Any] = rng.choice(
        [{}, {"fresh": True}, {"max_age": 0}, {"max_age": rng.uniform(0, 3)}]
    )
    if rng.random() < 0.5:
        return reader.get_aggregates(scope, **options).source
    return reader.get_category_breakdown(5, scope, **options).source


def brute_force(engine: Engine, scope: Scope, now: datetime) -> tuple[dict, list]:
    """The aggregates and breakdown of a scope as of `now`, counted row by row in Python."""
    with engine.connect() as conn:
        names = {cid: name for cid, name in conn.execute(select(Category.id, Category.name))}
        columns = (Email.account_id, Email.category_id, Email.is_unread, Email.is_auto_labeled)
        rows = conn.execute(select(*columns, Email.created_at)).all()
    mine = [row for row in rows if scope is None or row[0] == scope]
    start = floor_minute(now)  # the windows move by whole minutes (docs/statistics.md)
    this_week = sum(1 for row in mine if start - WEEK <= row[4] < now)
    previous = sum(1 for row in mine if start - 2 * WEEK <= row[4] < start - WEEK)
    if previous == 0:
        percentage = 0.0 if this_week == 0 else 100.0
    else:
        percentage = round((this_week - previous) / previous * 100, 1)
    aggregates = {
        "total_emails": len(mine),
        "auto_labeled": sum(1 for row in mine if row[3]),
        "categories_count": len(names),
        "unread_count": sum(1 for row in mine if row[2]),
        "weekly_growth": {"emails": this_week, "previous": previous, "percentage": percentage},
    }
    per_category = Counter(row[1] for row in mine)
    breakdown = sorted(
        ((name, per_category[cid]) for cid, name in names.items()), key=lambda p: (-p[1], p[0])
    )
    return aggregates, breakdown


def warmed_keys(client: redis.Redis, keys: KeySchema) -> list[str]:
    """Every value key of every warmed scope (and of all accounts)."""
    tokens = sorted(token.decode() for token in client.smembers(keys.scopes))  # type: ignore[union-attr]
    return [f"{keys.prefix}:v1:{kind.value}:{token}" for token in {"all", *tokens} for kind in Kind]


def computed_since(client: redis.Redis, keys: list[str], since: datetime) -> bool:
    """True when every key holds a value computed (so read from the database) after `since`."""
    raws: list[bytes | None] = client.mget(keys)  # type: ignore[assignment]
    return all(
        raw is not None and datetime.fromisoformat(json.loads(raw)["computed_at"]) > since
        for raw in raws
    )


def scheduled_pass_after(worker: Process, ticket: int) -> Callable[[], bool]:
    """A check: the worker finished a scheduled pass over every scope whose generation ticket
    came after `ticket`, so it read the database after that ticket was taken."""

    def check() -> bool:
        finished = (json.loads(line) for line in worker.lines if "recompute.finished" in line)
        return any(
            entry["trigger"] == "schedule" and entry["scopes"] > 1 and entry["generation"] > ticket
            for entry in finished
        )

    return check


def drift_lines(worker: Process) -> int:
    """How many values the worker's scheduled passes found wrong so far."""
    return sum(1 for line in worker.lines if "recompute.drift" in line)


def test_random_interleavings_converge_to_the_database(
    settings: Settings, pg: Engine, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """After each seeded round of concurrent mutations (some unpublished), recomputes, fallbacks
    and bypasses, one refresh period after quiescence every cached value is the truth."""
    fast = replace(settings, refresh_seconds=2, ttl_seconds=60, max_breakdown=100)
    keys = KeySchema(fast.key_prefix)
    with pg.begin() as conn:  # ids from the sequence, which the categories created later use
        conn.execute(insert(Category), [{"name": name} for name in ("work", "news", "social")])
    publisher = EventPublisher(fast)
    factory = tracked_sessions(pg, publisher, deltas=True)
    reader = DashboardReader.from_settings(fast)
    done: Counter[str] = Counter()
    try:
        with worker_process(fast, concurrency=2) as worker, beat_process(fast, tmp_path / "b"):
            for round_number, seed in enumerate(SEEDS):
                rng = random.Random(seed)
                cold = 1000 + round_number
                mutators = [random.Random(rng.random()) for _ in range(2)]
                readers = [random.Random(rng.random()) for _ in range(2)]

                def mutations(thread_rng: random.Random, part: int) -> list[str]:
                    return [mutate(factory, thread_rng, part) for _ in range(OPS_PER_THREAD)]

                def reads(thread_rng: random.Random, cold_scope: int) -> list[str]:
                    return [read(reader, thread_rng, cold_scope) for _ in range(OPS_PER_THREAD)]

                with ThreadPoolExecutor(4) as pool:
                    futures = [pool.submit(mutations, r, i) for i, r in enumerate(mutators)]
                    futures += [pool.submit(reads, r, cold) for r in readers]
                    for future in futures:
                        done.update(future.result())
                quiet, ticket = clock.now(), int(redis_client.incr(keys.seq))
                wait_until(
                    lambda: not markers(redis_client, fast),
                    "event runs to drain",
                    seen=lambda: markers(redis_client, fast),
                )
                pass_after = scheduled_pass_after(worker, ticket)
                wait_until(pass_after, f"a scheduled pass after quiescence (seed {seed})")
                assert computed_since(redis_client, warmed_keys(redis_client, keys), quiet)
                code, out, _ = run(fast, "verify")
                assert code == 0, f"seed {seed}: {out}"
                drifted = drift_lines(worker)
                quiet_pass = scheduled_pass_after(worker, int(redis_client.incr(keys.seq)))
                wait_until(quiet_pass, f"a quiet scheduled pass (seed {seed})")
                assert drift_lines(worker) == drifted, f"seed {seed}: drift in a quiet pass"
                for scope in [None, *ACCOUNTS, cold, cold + 100]:
                    aggregates = reader.get_aggregates(scope)
                    breakdown = reader.get_category_breakdown(fast.max_breakdown, scope)
                    expected = brute_force(pg, scope, aggregates.computed_at)
                    assert aggregates.data == expected[0], f"seed {seed}, scope {scope}"
                    expected = brute_force(pg, scope, breakdown.computed_at)
                    assert list(breakdown.data.items()) == expected[1], f"seed {seed}, {scope}"
                done.update(["checked"])
    finally:
        reader.close()
        publisher.close()
    assert done["checked"] == len(SEEDS)
    assert min(done[what] for what in ("bulk", "create", "fresh", "fallback")) > 0, done
    assert publisher.metrics.flush()
    code, out, _ = run(fast, "stats", "--json")
    assert json.loads(out)["events"]["applied"] > 0
