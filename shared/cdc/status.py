"""What the active WAL consumer tells operators: the status hash, change counts, the lag series.

Written at least once per second (shared/keys.py `cdc_status`, fields in CONTRACTS order): slot,
publication, confirmed_lsn, lag_seconds (commit to applied, last applied transaction),
retained_bytes, consumer, updated_at. Changes seen are counted in the metrics hash
(`cdc_changes:<op>`); the largest lag of each minute is kept as `series("cdc_lag_ms", minute)`.
"""

from __future__ import annotations

from collections import Counter

import redis

from dashcache.keys import KeySchema

SERIES_TTL_SECONDS = 7200
LAG_SERIES = "cdc_lag_ms"

# KEYS: series key. ARGV: value, ttl. Keeps the larger of the stored and the given value.
_SET_MAX = """
local current = tonumber(redis.call('GET', KEYS[1]) or '-1')
if tonumber(ARGV[1]) > current then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) end
return 1
"""


def minute_of(epoch_seconds: float) -> int:
    """The start of the minute holding `epoch_seconds` (a multiple of 60)."""
    return int(epoch_seconds // 60) * 60


class StatusWriter:
    """Writes the status of one consumer; counts and the minute's lag kept until written."""

    def __init__(
        self, client: redis.Redis, keys: KeySchema, slot: str, publication: str, consumer: str
    ) -> None:
        self.client = client
        self.keys = keys
        self.fields: dict[str, str] = {
            "slot": slot,
            "publication": publication,
            "consumer": consumer,
        }
        self.changes: Counter[str] = Counter()
        self.lag_seconds: float | None = None
        self._minute_lag: dict[int, float] = {}
        self._set_max = client.register_script(_SET_MAX)

    def applied(self, lag_seconds: float, now: float) -> None:
        """Note one applied transaction, `lag_seconds` after its commit."""
        self.lag_seconds = lag_seconds
        minute = minute_of(now)
        self._minute_lag[minute] = max(self._minute_lag.get(minute, 0.0), lag_seconds)

    def write(self, confirmed_lsn: str | None, retained_bytes: int | None, now: float) -> None:
        """Send the status, the pending change counts and the lag of the minutes seen."""
        fields = {**self.fields, "updated_at": repr(now)}
        if confirmed_lsn is not None:
            fields["confirmed_lsn"] = confirmed_lsn
        if self.lag_seconds is not None:
            fields["lag_seconds"] = f"{self.lag_seconds:.6f}"
        if retained_bytes is not None:
            fields["retained_bytes"] = str(retained_bytes)
        changes, self.changes = self.changes, Counter()
        minutes, self._minute_lag = self._minute_lag, {}
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(self.keys.cdc_status, items=[part for pair in fields.items() for part in pair])
        for op, count in changes.items():
            pipe.hincrby(self.keys.metrics, f"cdc_changes:{op}", count)
        for minute, lag in minutes.items():
            key = self.keys.series(LAG_SERIES, minute)
            self._set_max(keys=[key], args=[round(lag * 1000, 3), SERIES_TTL_SECONDS], client=pipe)
        try:
            pipe.execute()
        except redis.RedisError:
            self.changes.update(changes)
            for minute, lag in minutes.items():
                self._minute_lag[minute] = max(self._minute_lag.get(minute, 0.0), lag)
            raise
