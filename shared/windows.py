"""Weekly windows that move with the clock: pure, no I/O.

The weekly numbers count whole minutes: at time t, with m = t floored to its minute, the current
week is `created_at >= m - 7 d` (open at its end) and the week before `[m - 14 d, m - 7 d)`. So
an email leaves a window only at a minute start: an email of minute c leaves the current week
(and joins the week before) at minute c + 7 d + 1, and leaves the week before at c + 14 d + 1.

A value computed at minute b keeps, in its delta state, those crossings for the minutes
(b, b + HORIZON] (`Crossings`); its envelope carries the next LOOKAHEAD minutes of them as
cumulative moves (`"w"`), which a reader applies at read time (`moved`). Past the envelope's
moves a reader advances the state in Redis (shared/advance.py); past the horizon it recounts.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

MINUTE = timedelta(minutes=1)
WEEK_MINUTES = 7 * 24 * 60
HORIZON_MINUTES = 26 * 60
"""Minutes after a recount whose crossings its state holds: a day between passes, and slack."""
LOOKAHEAD_MINUTES = 10
"""Minutes of crossings an envelope carries (its moves stay a few dozen numbers at most)."""
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Moves = list[Any]
"""An envelope's `"w"`: [until (epoch seconds, exclusive), [moment...], [emails delta...],
[previous delta...]], the deltas cumulative and the moments (minute starts) ascending."""


class WindowsExpired(Exception):
    """A value's moves end before the moment of the read: advance its state, or recount."""


def growth_percentage(this_week: int, previous_week: int) -> float:
    """Week-over-week growth in percent, rounded to one decimal; 100.0 when growing from zero."""
    if previous_week == 0:
        return 0.0 if this_week == 0 else 100.0
    return round((this_week - previous_week) / previous_week * 100, 1)


def minute_of(moment: datetime) -> int:
    """Whole minutes since the epoch, floored."""
    return (moment - EPOCH) // MINUTE


def floor_minute(moment: datetime) -> datetime:
    """`moment` floored to its minute (the instant the weekly windows are counted as of)."""
    return EPOCH + minute_of(moment) * MINUTE


@dataclass(slots=True)
class Crossings:
    """Emails that cross a window start after a recount, by the minute they cross it:
    `leave_week` leave the current week for the week before; `leave_previous` leave the week
    before."""

    leave_week: dict[int, int] = field(default_factory=dict)
    leave_previous: dict[int, int] = field(default_factory=dict)

    def add(self, other: Crossings) -> None:
        """Accumulate `other` into self."""
        for mine, theirs in (
            (self.leave_week, other.leave_week),
            (self.leave_previous, other.leave_previous),
        ):
            for minute, count in theirs.items():
                mine[minute] = mine.get(minute, 0) + count

    def count(self, created_minute: int, previous: bool, emails: int) -> None:
        """`emails` emails of minute `created_minute`, in the week before if `previous`."""
        if previous:
            minute = created_minute + 2 * WEEK_MINUTES + 1
            self.leave_previous[minute] = self.leave_previous.get(minute, 0) + emails
        else:
            minute = created_minute + WEEK_MINUTES + 1
            self.leave_week[minute] = self.leave_week.get(minute, 0) + emails


def crossing_ranges(base: int) -> tuple[tuple[datetime, datetime], tuple[datetime, datetime]]:
    """The created_at ranges whose emails cross a window start in (base, base + HORIZON]:
    [start, end) of the current week's and of the week before's."""
    start = EPOCH + base * MINUTE
    week, horizon = WEEK_MINUTES * MINUTE, HORIZON_MINUTES * MINUTE
    return (start - week, start - week + horizon), (start - 2 * week, start - 2 * week + horizon)


def moves(base: int, crossings: Crossings) -> Moves:
    """The envelope's moves after minute `base`, for the next LOOKAHEAD minutes (within the
    horizon); the same list the Lua `moves` renders."""
    last = base + LOOKAHEAD_MINUTES
    week, previous = crossings.leave_week, crossings.leave_previous
    minutes = sorted({m for m in (*week, *previous) if base < m <= last})
    at: list[int] = []
    emails: list[int] = []
    before: list[int] = []
    e = p = 0
    for minute in minutes:
        left, gone = week.get(minute, 0), previous.get(minute, 0)
        e -= left
        p += left - gone
        at.append(minute * 60)
        emails.append(e)
        before.append(p)
    return [(last + 1) * 60, at, emails, before]


def moved(data: dict[str, Any], windows: Moves, now: float) -> dict[str, Any]:
    """Aggregates `data` with its weekly numbers moved to `now` (epoch seconds); raises
    `WindowsExpired` past the moves' end."""
    if now >= windows[0]:
        raise WindowsExpired
    i = bisect_right(windows[1], now)
    if i:
        growth = data["weekly_growth"]
        e = growth["emails"] + windows[2][i - 1]
        p = growth["previous"] + windows[3][i - 1]
        data["weekly_growth"] = {"emails": e, "previous": p, "percentage": growth_percentage(e, p)}
    return data
