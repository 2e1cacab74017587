"""Check the cache against the database: every warmed value equals a fresh computation.

Values are judged *as of now*: an aggregates value's weekly numbers are moved to the moment of
the check as a reader moves them (shared/windows.py, advanced in Redis when its moves ended), and
compared with a recount as of that same moment; a breakdown does not move with the clock. A
value without moves (no delta state: SQLite) is judged as of its own `computed_at`; one past its
horizon counts as missing (a reader recounts it). Mutations since the values were read do show up as
differences: run it once writes have quiesced. Missing values are counted, not differences (a
reader recomputes them).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from dashcache import clock
from dashcache.keys import Kind, Scope
from dashcache.recompute import snapshot, to_data
from dashcache.stats import ScopeStats, compute_every_scope, compute_scope
from dashcache.store import Envelope, RedisStore
from dashcache.windows import WindowsExpired, moved


@dataclass(frozen=True, slots=True)
class Difference:
    """One field of one key whose cached value differs from the fresh one."""

    key: str
    path: str
    cached: Any
    fresh: Any

    def __str__(self) -> str:
        return f"{self.key} {self.path}: cached {self.cached!r}, fresh {self.fresh!r}"


@dataclass(slots=True)
class Report:
    """What a verification found."""

    checked: int = 0
    missing: int = 0
    differences: list[Difference] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every cached value matched."""
        return not self.differences


def diff(cached: Any, fresh: Any, path: str = "data") -> Iterator[tuple[str, Any, Any]]:
    """(path, cached, fresh) for every leaf where two JSON values differ; nothing when equal."""
    if isinstance(cached, dict) and isinstance(fresh, dict):
        for name in sorted(cached.keys() | fresh.keys(), key=str):
            yield from diff(cached.get(name), fresh.get(name), f"{path}.{name}")
    elif isinstance(cached, list) and isinstance(fresh, list) and len(cached) == len(fresh):
        for index, (left, right) in enumerate(zip(cached, fresh, strict=True)):
            yield from diff(left, right, f"{path}[{index}]")
    elif cached != fresh or type(cached) is not type(fresh):
        yield path, cached, fresh


def verify(engine: Engine, store: RedisStore, max_breakdown: int) -> Report:
    """Compare every warmed value with a computation as of now (or, for a value that cannot be
    moved, as of its `computed_at`), in one snapshot."""
    report = Report()
    now = clock.now()
    cached: dict[datetime, dict[tuple[Kind, Scope], Envelope]] = defaultdict(dict)
    for account_id in [None, *store.warmed_accounts()]:
        for kind in Kind:
            envelope = store.get(kind, account_id)
            if envelope is None:
                report.missing += 1
            else:
                judged = as_of_now(store, envelope, kind, account_id, now)
                if judged is None:
                    report.missing += 1
                else:
                    cached[judged[0]][kind, account_id] = judged[1]
    with snapshot(engine) as session:
        for computed_at, envelopes in cached.items():
            scopes = sorted({scope for _, scope in envelopes}, key=lambda s: -1 if s is None else s)
            fresh: dict[Scope, ScopeStats]
            if len(scopes) == 1:
                fresh = {scopes[0]: compute_scope(session, scopes[0], computed_at, max_breakdown)}
            else:
                ids = [scope for scope in scopes if scope is not None]
                fresh = compute_every_scope(session, computed_at, max_breakdown, include=ids)
            for (kind, account_id), envelope in envelopes.items():
                report.checked += 1
                key = store.keys.value(kind, account_id)
                expected = to_data(fresh[account_id], kind)
                report.differences += [
                    Difference(key, *found) for found in diff(envelope.data, expected)
                ]
    return report


def as_of_now(
    store: RedisStore, envelope: Envelope, kind: Kind, account_id: Scope, now: datetime
) -> tuple[datetime, Envelope] | None:
    """The moment to judge a value as of, and the value as of then: a breakdown, and an
    aggregates value with moves, as of `now` (advanced in Redis if need be); one without moves
    as of its `computed_at`. None for a value past its horizon (a reader recounts it)."""
    if kind is Kind.BREAKDOWN or envelope.windows is None:
        return (now if kind is Kind.BREAKDOWN else envelope.computed_at), envelope
    found = moved_to(envelope, now)
    if found is None:
        raw = store.advance(account_id, now)
        found = None if raw is None else moved_to(Envelope.from_json(raw), now)
    return None if found is None else (now, found)


def moved_to(envelope: Envelope, now: datetime) -> Envelope | None:
    """An aggregates envelope with its weekly numbers moved to `now`; None past its moves."""
    if envelope.windows is None:
        return None
    try:
        return replace(envelope, data=moved(envelope.data, envelope.windows, now.timestamp()))
    except WindowsExpired:
        return None
