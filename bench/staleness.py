"""How far behind the truth a value a reader got was, from the mutation stream's progress.

Every insert and mark-read of the stream adds exactly one to `total_emails - unread_count` of
the all-accounts scope (see `dashcache.bench.mutations`), and one writer commits them in order. So
a value whose counter is `base + k` reflects the first k of them and none after: it was behind
the truth since the commit of mutation k + 1, if that commit happened before the read began.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dashcache.stats import ScopeStats


def progress_of(aggregates: dict[str, Any]) -> int:
    """The progress counter of an all-accounts aggregates value."""
    return int(aggregates["total_emails"]) - int(aggregates["unread_count"])


@dataclass(slots=True)
class ProgressClock:
    """Commit times of the progress-moving mutations, in order (monotonic seconds)."""

    base: int
    commits: list[float] = field(default_factory=list)

    @classmethod
    def start(cls, truth: ScopeStats) -> ProgressClock:
        """A clock whose base is the all-accounts truth before any mutation."""
        return cls(progress_of(truth.aggregates))

    def committed(self, at: float) -> None:
        """Record the next progress-moving commit (one writer thread)."""
        self.commits.append(at)

    def behind(self, aggregates: dict[str, Any], read_started: float) -> float:
        """Seconds the value was behind the truth when the read began; 0 when it was current."""
        reflected = max(progress_of(aggregates) - self.base, 0)
        if reflected >= len(self.commits):
            return 0.0
        return max(0.0, read_started - self.commits[reflected])
