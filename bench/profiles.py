"""Benchmark profiles: table sizes, load shape and durations of one `dashcache bench` run."""

from __future__ import annotations

from dataclasses import dataclass, replace

from dashcache.errors import InvalidArgument

TEN_MILLION = 10_000_000


@dataclass(frozen=True, slots=True)
class Profile:
    """Everything a run's size and duration depends on.

    `sizes` are the table sizes (emails) scenario 4 measures, growing one database; scenarios
    1-3 run at the last of them. Durations are seconds.
    """

    name: str
    sizes: tuple[int, ...]
    accounts: int
    categories: int
    latency_rounds: int
    readers: int
    reader_think_seconds: float
    warmup_seconds: float
    steady_seconds: float
    steady_rate: float
    burst: int
    burst_batch: int
    quiet_seconds: float
    stampede_readers: int
    recompute_repeats: int
    matview_refresh_seconds: float
    dashcache_refresh_seconds: int
    settle_seconds: float

    @property
    def main_size(self) -> int:
        """The table size scenarios 1-3 run at."""
        return self.sizes[-1]

    def with_sizes(self, sizes: tuple[int, ...]) -> Profile:
        """The same profile at other table sizes (ascending, each >= 1,000)."""
        if not sizes or any(size < 1_000 for size in sizes) or list(sizes) != sorted(sizes):
            raise InvalidArgument(f"sizes must be ascending integers >= 1000, got {sizes}")
        return replace(self, sizes=sizes)

    def scaled(self, factor: float) -> Profile:
        """Durations, the burst and the latency rounds times `factor` (0 < factor <= 1)."""
        if not 0 < factor <= 1:
            raise InvalidArgument(f"the time scale must be in (0, 1], got {factor}")
        return replace(
            self,
            latency_rounds=max(4, round(self.latency_rounds * factor)),
            warmup_seconds=self.warmup_seconds * factor,
            steady_seconds=self.steady_seconds * factor,
            burst=max(10, round(self.burst * factor)),
            quiet_seconds=self.quiet_seconds * factor,
            recompute_repeats=max(1, round(self.recompute_repeats * factor)),
        )


QUICK = Profile(
    name="quick",
    sizes=(10_000, 50_000),
    accounts=100,
    categories=20,
    latency_rounds=40,
    readers=6,
    reader_think_seconds=0.005,
    warmup_seconds=1.0,
    steady_seconds=3.0,
    steady_rate=50.0,
    burst=1_000,
    burst_batch=20,
    quiet_seconds=1.5,
    stampede_readers=50,
    recompute_repeats=3,
    matview_refresh_seconds=1.0,
    dashcache_refresh_seconds=30,
    settle_seconds=15.0,
)

FULL = Profile(
    name="full",
    sizes=(100_000, 1_000_000),
    accounts=1_000,
    categories=20,
    latency_rounds=40,
    readers=16,
    reader_think_seconds=0.01,
    warmup_seconds=3.0,
    steady_seconds=20.0,
    steady_rate=50.0,
    burst=10_000,
    burst_batch=20,
    quiet_seconds=5.0,
    stampede_readers=50,
    recompute_repeats=5,
    matview_refresh_seconds=5.0,
    dashcache_refresh_seconds=60,
    settle_seconds=30.0,
)

PROFILES = {profile.name: profile for profile in (QUICK, FULL)}
