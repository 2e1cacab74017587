"""Helpers of the event tests: tracked sessions, waiting on Redis state, the database's truth."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime

import redis
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from shared.coalesce import Run
from shared.config import Settings
from shared.events import EventPublisher, track_mutations
from shared.keys import KeySchema, Kind, Scope
from shared.recompute import snapshot, to_data
from shared.stats import compute_scope
from tests.processes import Process


def tracked_sessions(
    engine: Engine, publisher: EventPublisher, runs: list[list[Run]] | None = None
) -> sessionmaker[Session]:
    """Sessions whose commits publish through `publisher`; each commit's runs go to `runs`."""
    sent = [] if runs is None else runs
    factory = sessionmaker(engine, expire_on_commit=False)
    track_mutations(factory, lambda events: sent.append(publisher.publish_many(events)))
    return factory


def wait_until(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Poll `check` until it holds; fail naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def envelope(client: redis.Redis, settings: Settings, kind: Kind, scope: Scope) -> dict:
    """The stored envelope of one key ({} when missing)."""
    raw = client.get(KeySchema(settings.key_prefix).value(kind, scope))
    return json.loads(raw) if raw else {}


def markers(client: redis.Redis, settings: Settings) -> list[bytes]:
    """Pending and running markers that exist now."""
    base = f"{settings.key_prefix}:v1:"
    found = list(client.scan_iter(match=base + "pending:*"))
    return found + list(client.scan_iter(match=base + "running:*"))


def truth(engine: Engine, kind: Kind, scope: Scope, as_of: str, max_breakdown: int) -> object:
    """What the database says for one key, as of a value's computed_at."""
    with snapshot(engine) as session:
        stats = compute_scope(session, scope, datetime.fromisoformat(as_of), max_breakdown)
    return to_data(stats, kind)


def settled(
    client: redis.Redis, settings: Settings, engine: Engine, keys: list[tuple[Kind, Scope]]
) -> bool:
    """True when no event run is pending or running and every key equals the database."""
    if markers(client, settings):
        return False
    for kind, scope in keys:
        stored = envelope(client, settings, kind, scope)
        if not stored:
            return False
        expected = truth(engine, kind, scope, stored["computed_at"], settings.max_breakdown)
        if stored["data"] != expected:
            return False
    return True


def event_runs(worker: Process) -> Counter[str]:
    """Event-triggered recomputes the worker finished, per scope token."""
    runs: Counter[str] = Counter()
    for line in worker.lines:
        if '"recompute.finished"' in line:
            record = json.loads(line)
            if record.get("trigger") == "event":
                runs[record["scope"]] += 1
    return runs
