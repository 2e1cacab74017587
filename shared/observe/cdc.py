"""What the WAL consumer reports: its status hash, its change counts, the lock's holder.

Read by `dashcache stats` (the `cdc` object), `dashcache health` (the lag check) and the
Prometheus endpoint (`dashcache_cdc_*`). None when no WAL consumer ever ran.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis

from dashcache.keys import KeySchema

CDC_OPS = ("insert", "update", "delete", "truncate")


@dataclass(frozen=True, slots=True)
class CdcStatus:
    """The last status the active consumer wrote, with the changes counted so far."""

    slot: str
    publication: str
    confirmed_lsn: str | None
    lag_seconds: float | None
    retained_bytes: int | None
    active_consumer: str | None
    updated_at: datetime | None
    changes: dict[str, int] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        """The `cdc` object of `dashcache stats --json`."""
        return {
            "slot": self.slot,
            "publication": self.publication,
            "confirmed_lsn": self.confirmed_lsn,
            "lag_seconds": self.lag_seconds,
            "retained_bytes": self.retained_bytes,
            "active_consumer": self.active_consumer,
            "updated_at": None if self.updated_at is None else self.updated_at.isoformat(),
            "changes": {op: self.changes.get(op, 0) for op in CDC_OPS},
        }


def parse_status(
    fields: dict[bytes, bytes], holder: bytes | None, counts: list[bytes | None]
) -> CdcStatus | None:
    """The status from the hash's fields, the lock's value and the change counts (in CDC_OPS
    order); None for an empty hash. The active consumer is the lock's holder, else the last one
    that wrote the hash (its `updated_at` tells how long ago)."""
    if not fields:
        return None
    text = {name.decode(): value.decode() for name, value in fields.items()}
    updated = text.get("updated_at")
    return CdcStatus(
        slot=text.get("slot", ""),
        publication=text.get("publication", ""),
        confirmed_lsn=text.get("confirmed_lsn"),
        lag_seconds=float(text["lag_seconds"]) if "lag_seconds" in text else None,
        retained_bytes=int(text["retained_bytes"]) if "retained_bytes" in text else None,
        active_consumer=holder.decode() if holder else text.get("consumer"),
        updated_at=None if updated is None else datetime.fromtimestamp(float(updated), UTC),
        changes={op: int(count) for op, count in zip(CDC_OPS, counts, strict=True) if count},
    )


def read_cdc(client: redis.Redis, keys: KeySchema) -> CdcStatus | None:
    """The WAL consumer's status (one round trip); None when none ever ran."""
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(keys.cdc_status)
    pipe.get(keys.cdc_lock)
    pipe.hmget(keys.metrics, [f"cdc_changes:{op}" for op in CDC_OPS])
    fields, holder, counts = pipe.execute()
    return parse_status(fields, holder, counts)
