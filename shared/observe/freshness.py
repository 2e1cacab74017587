"""Freshness of the warmed values, computed on demand from the keys (never on the read path).

Reads the set of warmed scopes, then every value key with MGET in chunks, and parses each
envelope's `computed_at`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import redis

from dashcache.keys import KeySchema, Kind, parse_scope_token
from dashcache.metrics import KIND_LABELS

MGET_CHUNK = 500
"""Keys per MGET, so no single command blocks Redis for long."""


@dataclass(frozen=True, slots=True)
class KeyAge:
    """How old one warmed value is."""

    scope: str
    kind: str
    computed_at: datetime
    age_seconds: float


@dataclass(frozen=True, slots=True)
class Freshness:
    """The age of every warmed value, as of `now`."""

    now: datetime
    scopes_warmed: int
    ages: list[KeyAge]
    missing: int
    """Values of warmed scopes that are absent or unreadable (expired, or deleted)."""

    @property
    def oldest(self) -> KeyAge | None:
        """The oldest value, or None when nothing is warmed."""
        return max(self.ages, key=lambda age: age.age_seconds, default=None)


def freshness_from(tokens: Sequence[str], raws: Sequence[bytes | None], now: datetime) -> Freshness:
    """Ages from the scope tokens and the raw values of each (scope, kind), in `Kind` order."""
    ages: list[KeyAge] = []
    missing = 0
    pairs = [(token, kind) for token in tokens for kind in Kind]
    for (token, kind), raw in zip(pairs, raws, strict=True):
        computed_at = _computed_at(raw)
        if computed_at is None:
            missing += 1
            continue
        age = max((now - computed_at).total_seconds(), 0.0)
        ages.append(KeyAge(token, KIND_LABELS[kind], computed_at, age))
    return Freshness(now, len(tokens), ages, missing)


def read_freshness(client: redis.Redis, keys: KeySchema, now: datetime) -> Freshness:
    """The freshness of every warmed value under `keys`' prefix."""
    members: set[bytes] = client.smembers(keys.scopes)  # type: ignore[assignment]
    tokens = sorted(member.decode() for member in members)
    names = [keys.value(kind, parse_scope_token(token)) for token in tokens for kind in Kind]
    raws: list[bytes | None] = []
    for start in range(0, len(names), MGET_CHUNK):
        chunk: list[bytes | None] = client.mget(names[start : start + MGET_CHUNK])  # type: ignore[assignment]
        raws += chunk
    return freshness_from(tokens, raws, now)


def _computed_at(raw: bytes | None) -> datetime | None:
    if raw is None:
        return None
    try:
        return datetime.fromisoformat(json.loads(raw)["computed_at"])
    except (ValueError, KeyError, TypeError):
        return None
