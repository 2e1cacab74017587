"""The report behind `dashcache stats`: metric totals and freshness, as JSON or as a table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import redis

from dashcache.keys import KeySchema
from dashcache.metrics import (
    EVENT_OUTCOMES,
    KIND_LABELS,
    PASS_OUTCOMES,
    READ_OUTCOMES,
    RECOMPUTE_OUTCOMES,
    TRIGGERS,
)
from dashcache.observe.cdc import CdcStatus, read_cdc
from dashcache.observe.freshness import Freshness
from dashcache.observe.totals import Totals, read_totals
from dashcache.passes import last_pass


def read_report(client: redis.Redis, keys: KeySchema, freshness: Freshness) -> dict[str, Any]:
    """`report` of what Redis holds now: `dashcache stats` and the status page both show it."""
    return report(
        read_totals(client, keys), freshness, read_cdc(client, keys), last_pass(client, keys)
    )


def report(
    totals: Totals,
    freshness: Freshness,
    cdc: CdcStatus | None = None,
    last_pass: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Every count (zeros included, so the shape is stable), the hit ratio, the ages, the WAL
    consumer's status (`cdc`: None when none ever ran) and the last scheduled pass whose every
    shard finished (`dashcache.passes.last_pass`)."""
    now = freshness.now
    recomputes: dict[str, dict[str, Any]] = {}
    for trigger in TRIGGERS:
        row: dict[str, Any] = {
            o: totals.recomputes.get((trigger, o), 0) for o in RECOMPUTE_OUTCOMES
        }
        durations = totals.durations.get(trigger)
        row["fenced_writes"] = totals.fenced_writes.get(trigger, 0)
        row["mean_seconds"] = (
            round(durations.sum_seconds / durations.count, 4)
            if durations and durations.count
            else None
        )
        recomputes[trigger] = row
    oldest = freshness.oldest
    last_run = totals.last_scheduled_run
    ratio = totals.hit_ratio
    return {
        "now": now.isoformat(),
        "hit_ratio": None if ratio is None else round(ratio, 4),
        "lookups": totals.lookups,
        "reads": {
            kind: {o: totals.reads.get((kind, o), 0) for o in READ_OUTCOMES}
            for kind in KIND_LABELS.values()
        },
        "recomputes": recomputes,
        "events": {o: totals.events.get(o, 0) for o in EVENT_OUTCOMES},
        "drift": {kind: totals.drift.get(kind, 0) for kind in KIND_LABELS.values()},
        "drift_by_trigger": totals.drift_by_trigger,
        "scopes_warmed": freshness.scopes_warmed,
        "values_missing": freshness.missing,
        "oldest": None
        if oldest is None
        else {
            "scope": oldest.scope,
            "kind": oldest.kind,
            "computed_at": oldest.computed_at.isoformat(),
            "age_seconds": round(oldest.age_seconds, 3),
        },
        "last_scheduled_run": None
        if last_run is None
        else {"at": last_run.isoformat(), "age_seconds": round(_age(now, last_run), 3)},
        "cdc": None if cdc is None else cdc.body(),
        "last_pass": last_pass,
        "pass_scopes": {o: totals.pass_scopes.get(o, 0) for o in PASS_OUTCOMES},
    }


def render_table(body: dict[str, Any]) -> str:
    """`report`'s body as aligned plain text for a terminal."""
    reads = [["reads", *READ_OUTCOMES]]
    reads += [[kind, *map(str, counts.values())] for kind, counts in body["reads"].items()]
    recompute_head = ["recomputes", *RECOMPUTE_OUTCOMES, "fenced_writes", "mean_seconds"]
    recomputes = [recompute_head]
    for trigger, row in body["recomputes"].items():
        mean = "-" if row["mean_seconds"] is None else f"{row['mean_seconds']:.3f}"
        recomputes.append([trigger, *(str(row[h]) for h in recompute_head[1:-1]), mean])
    ratio = body["hit_ratio"]
    oldest = body["oldest"]
    last_run = body["last_scheduled_run"]
    events = ", ".join(f"{name} {count}" for name, count in body["events"].items())
    cdc = body.get("cdc")
    drift = ", ".join(f"{name} {count}" for name, count in body["drift"].items())
    summary = [
        ["hit ratio", "-" if ratio is None else f"{ratio:.1%} of {body['lookups']} lookups"],
        ["events", events],
        ["drift", drift],
        ["scopes warmed", f"{body['scopes_warmed']} ({body['values_missing']} values missing)"],
        [
            "oldest value",
            "-"
            if oldest is None
            else f"{oldest['kind']} of {oldest['scope']}, {oldest['age_seconds']:.1f} s old",
        ],
        [
            "last beat run",
            "never"
            if last_run is None
            else f"{last_run['at']}, {last_run['age_seconds']:.1f} s ago",
        ],
        [
            "wal source",
            "not running"
            if cdc is None
            else f"slot {cdc['slot']} at {cdc['confirmed_lsn']}, lag {cdc['lag_seconds']} s, "
            f"{cdc['retained_bytes']} bytes retained, active {cdc['active_consumer']}",
        ],
        ["last pass", _pass_line(body.get("last_pass"))],
    ]
    return "\n\n".join([_columns(reads), _columns(recomputes), _columns(summary, numbers=False)])


def _pass_line(last: dict[str, Any] | None) -> str:
    """The last scheduled pass in one line."""
    if last is None:
        return "never"
    return (
        f"{last['at']}: {last['scopes']} scopes in {last['shards']} shards, "
        f"{last['duration_ms'] / 1000:.1f} s, {last['idle_dropped']} idle dropped"
    )


def _columns(rows: list[list[str]], numbers: bool = True) -> str:
    widths = [max(len(row[i]) for row in rows if i < len(row)) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0])]
        cells += [
            cell.rjust(width) if numbers else cell.ljust(width)
            for cell, width in zip(row[1:], widths[1:], strict=False)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _age(now: datetime, then: datetime) -> float:
    return max((now - then).total_seconds(), 0.0)
