"""What scenarios share: the run's context, building strategies, comparing with the truth."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dashcache.bench.dashcache import Dashcache
from dashcache.bench.database import BenchDatabase
from dashcache.bench.matview import MatView
from dashcache.bench.profiles import Profile
from dashcache.bench.strategies import BenchContext, Live, Reading, Strategy, TtlInvalidate
from dashcache.keys import Kind, Scope
from dashcache.recompute import to_data
from dashcache.stats import ScopeStats

STRATEGIES = ("live", "ttl-invalidate", "matview", "dashcache")
LONG_PERIOD_SECONDS = 3600


def log_progress(message: str) -> None:
    """One progress line on stderr, with the time of day."""
    print(time.strftime("%H:%M:%S"), message, file=sys.stderr, flush=True)


@dataclass
class Run:
    """One bench run: its database, strategy context, profile and progress output."""

    database: BenchDatabase
    ctx: BenchContext
    profile: Profile
    progress: Callable[[str], None] = log_progress

    def strategy(self, name: str, background: bool = True) -> Strategy:
        """A new strategy; `background=False` keeps schedules and processes from running."""
        if name == "live":
            return Live(self.ctx)
        if name == "ttl-invalidate":
            return TtlInvalidate(self.ctx)
        if name == "matview":
            period = self.profile.matview_refresh_seconds if background else LONG_PERIOD_SECONDS
            return MatView(self.ctx, period)
        if name == "dashcache":
            return Dashcache(self.ctx, self.profile.dashcache_refresh_seconds, background)
        raise ValueError(f"unknown strategy {name!r}")

    def truth(self, account_id: Scope) -> ScopeStats:
        """The database's numbers for a scope, now."""
        return self.database.truth(account_id, self.ctx.max_breakdown)


def comparable(kind: Kind, data: Any) -> Any:
    """The part of a value that mutations move: everything but the clock-dependent growth."""
    if kind is Kind.AGGREGATES:
        return {key: value for key, value in data.items() if key != "weekly_growth"}
    return [list(pair) for pair in data]


def matches_truth(kind: Kind, got: Reading, truth: ScopeStats) -> bool:
    """Whether a reading equals the database's numbers (weekly growth aside: it moves with now)."""
    return bool(comparable(kind, got.data) == comparable(kind, to_data(truth, kind)))
