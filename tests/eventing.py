"""Helpers of the event tests: tracked sessions, Redis state, the database's truth."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

import redis
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from dashcache.config import Settings
from dashcache.events import (
    EmailCreated,
    EmailDeleted,
    EmailUpdated,
    Event,
    EventPublisher,
    track_mutations,
)
from dashcache.events.coalesce import Run
from dashcache.keys import ACCOUNTS_SCOPE, ALL_SCOPE, EVERY_SCOPE, KeySchema, Kind, Scope
from dashcache.recompute import snapshot, to_data
from dashcache.stats import compute_scope


def tracked_sessions(
    engine: Engine,
    publisher: EventPublisher,
    runs: list[list[Run]] | None = None,
    deltas: bool = False,
) -> sessionmaker[Session]:
    """Sessions whose commits publish through `publisher`; each commit's runs go to `runs`.

    Without `deltas` the events lose their txid, so they take the recompute path under test.
    """
    sent = [] if runs is None else runs
    factory = sessionmaker(engine, expire_on_commit=False)

    def publish(events: list[Event]) -> None:
        if not deltas:
            events = [without_txid(event) for event in events]
        sent.append(publisher.publish_many(events))

    track_mutations(factory, publish)
    return factory


def without_txid(event: Event) -> Event:
    """The event as a producer without transaction ids sends it."""
    if isinstance(event, EmailCreated | EmailUpdated | EmailDeleted):
        return replace(event, txid=None)
    return event


def run_target(label: str) -> str:
    """The target a run's scope label belongs to: `all`, `every`, or `accounts` for a run of
    accounts, whichever it drained (`a7`, `a7+36`)."""
    return label if label in (ALL_SCOPE, EVERY_SCOPE) else ACCOUNTS_SCOPE


def run_starts(lines: Iterable[str]) -> dict[tuple[str, str], list[int]]:
    """Start times (ms, Redis clock) of the event runs in a worker's JSON log lines, per target
    and kind claimed (the unit the throttle's cooldown is kept for), in order."""
    starts: dict[tuple[str, str], list[int]] = {}
    for line in lines:
        if '"recompute.finished"' in line:
            record = json.loads(line)
            if record.get("trigger") == "event" and record.get("outcome") != "skipped":
                target = run_target(record["scope"])
                for kind in record["claimed"]:
                    starts.setdefault((target, kind), []).append(record["started_ms"])
    return {key: sorted(times) for key, times in starts.items()}


def start_gaps(lines: Iterable[str]) -> dict[tuple[str, str], list[int]]:
    """The gaps (ms) between consecutive starts of event runs, per target and kind."""
    return {
        key: [later - earlier for earlier, later in itertools.pairwise(times)]
        for key, times in run_starts(lines).items()
    }


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


@dataclass(frozen=True)
class Settled:
    """Whether keys are settled: false, and shown (in a timed-out wait), with what is not."""

    unsettled: str = ""

    def __bool__(self) -> bool:
        return not self.unsettled

    def __repr__(self) -> str:
        return self.unsettled or "settled"


def settled(
    client: redis.Redis, settings: Settings, engine: Engine, keys: list[tuple[Kind, Scope]]
) -> Settled:
    """True when no event run is pending or running and every key equals the database."""
    if found := markers(client, settings):
        return Settled(f"markers {found}")
    for kind, scope in keys:
        stored = envelope(client, settings, kind, scope)
        if not stored:
            return Settled(f"{kind.value} of {scope} missing")
        expected = truth(engine, kind, scope, stored["computed_at"], settings.max_breakdown)
        if stored["data"] != expected:
            return Settled(f"{kind.value} of {scope} holds {stored['data']}, not {expected}")
    return Settled()
