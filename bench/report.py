"""The results as JSON and as Markdown tables (pure functions of the results dict)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

TARGET_SPEEDUP = 1000
TARGET_DB_SHARE = 0.1
TARGET_RECOMPUTE_SHARE = 0.6


def clean(value: Any) -> Any:
    """NaN and infinities become None, so the JSON is standard."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: clean(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [clean(item) for item in value]
    return value


def write_json(results: dict[str, Any], path: Path) -> None:
    """The whole results dict, indented."""
    path.write_text(json.dumps(clean(results), indent=2, allow_nan=False) + "\n")


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The three targets, each with the measured value and whether it was met."""
    out = []
    latency = results.get("latency", {}).get("scopes", {}).get("all accounts")
    if latency:
        speedup = latency["dashcache"]["speedup_vs_live"]
        out.append(
            _target("read p50 speed-up over live (all accounts)", speedup, ">=", TARGET_SPEEDUP)
        )
    mixed = results.get("mixed", {}).get("strategies")
    if mixed:
        share = _share(mixed["dashcache"]["dashboard_db_seconds"], mixed["ttl-invalidate"])
        out.append(
            _target("dashboard DB time vs ttl-invalidate (mixed)", share, "<=", TARGET_DB_SHARE)
        )
    sizes = results.get("recompute", [])
    if sizes:
        main = sizes[-1]
        for key in ("recompute_x_refresh", "recompute_x_refresh_concurrently"):
            label = f"{key.replace('_x_', ' / ')} at {main['emails']:,} emails"
            out.append(_target(label, main[key], "<=", TARGET_RECOMPUTE_SHARE))
    return out


def _share(value: float, other: dict[str, Any]) -> float | None:
    base = other["dashboard_db_seconds"]
    return round(value / base, 4) if base else None


def _target(label: str, value: float | None, op: str, bound: float) -> dict[str, Any]:
    met = value is not None and (value >= bound if op == ">=" else value <= bound)
    return {"target": label, "value": value, "bound": f"{op} {bound}", "met": met}


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in rows]
    return [*lines, ""]


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def markdown(results: dict[str, Any]) -> str:
    """Every scenario as a table, with the run's machine, versions and sizes first."""
    machine = results["machine"]
    sizes = ", ".join(f"{size['emails']:,}" for size in results["recompute"])
    lines = [
        f"# dashcache bench: profile `{results['profile']['name']}`",
        "",
        f"Command: `{results['command']}`",
        "",
        f"Machine: {machine['cpu_model']}, {machine['cores']} cores, {machine['memory_gb']} GB; "
        f"load average at start {machine['load_average_at_start']}, "
        f"at end {results.get('load_average_at_end')}.",
        f"Load average (1, 5, 15 min) when each scenario began: "
        f"{results.get('load_average_at_scenario_start')}.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in machine["versions"].items() if v),
        "",
        f"Rows: scenario 4 at {sizes} "
        f"emails; scenarios 1-3 at {results['rows']:,} (the mixed load adds some: "
        f"{results['rows_at_end']:,} at the end).",
        "",
        "Database load is PostgreSQL's own statistics; see `bench/pgstats.py`.",
        "",
    ]
    lines += _latency(results.get("latency"))
    lines += _mixed(results.get("mixed"))
    lines += _stampede(results.get("stampede"))
    lines += _recompute(results.get("recompute"))
    rows = [[t["target"], t["value"], t["bound"], t["met"]] for t in targets(results)]
    lines += ["## Targets", "", *_table(["target", "measured", "wanted", "met"], rows)]
    return "\n".join(lines)


def _latency(latency: dict[str, Any] | None) -> list[str]:
    if not latency:
        return []
    lines = [f"## 1. Read latency ({latency['rounds']} interleaved rounds per scope)", ""]
    for label, scope in latency["scopes"].items():
        rows = [
            [name, s["p50_ms"], s["p99_ms"], s["x_raw_get"], s["speedup_vs_live"]]
            for name, s in scope.items()
            if isinstance(s, dict)
        ]
        lines += [f"{label} (account {scope['account_id']}):", ""]
        header = ["strategy", "p50 ms", "p99 ms", "p50 / raw GET", "speed-up vs live"]
        lines += _table(header, rows)
    return lines


def _mixed(mixed: dict[str, Any] | None) -> list[str]:
    if not mixed:
        return []
    lines = [
        f"## 2. Mixed load ({mixed['readers']} readers, "
        f"{mixed['steady_mutations_per_second']:g} mutations/s, then a burst of "
        f"{mixed['burst']:,})",
        "",
    ]
    strategies = mixed["strategies"]
    ttl_time = strategies["ttl-invalidate"]["dashboard_db_seconds"]
    header = [
        "strategy", "dashboard queries", "emails rows read", "dashboard DB s", "vs ttl-invalidate",
        "all statements DB s", "read p50 ms", "read p99 ms", "reads/s", "stale reads",
        "staleness p99 ms", "staleness max ms", "final = truth", "burst mutations/s",
    ]  # fmt: skip
    rows = [
        [
            name,
            s["dashboard_queries"],
            s["emails_rows_read"],
            s["dashboard_db_seconds"],
            round(s["dashboard_db_seconds"] / ttl_time, 4) if ttl_time else None,
            s["all_statements_db_seconds"],
            s["reads"]["p50_ms"],
            s["reads"]["p99_ms"],
            s["reads_per_second"],
            s["staleness"]["stale_share"],
            s["staleness"]["p99_ms"],
            s["staleness"]["max_ms"],
            s["final_matches_truth"],
            s["burst_mutations_per_second"],
        ]
        for name, s in strategies.items()
    ]
    lines += _table(header, rows)
    extra_keys = (
        "load_seconds",
        "racing_sets",
        "refreshes",
        "worker_cpu_seconds",
        "redis_bytes_per_scope",
    )
    extras = {name: {k: s[k] for k in extra_keys if k in s} for name, s in strategies.items()}
    notes = [f"{name}: {extra}" for name, extra in extras.items() if extra]
    return [*lines, *(f"- {note}" for note in notes), ""]


def _stampede(stampede: dict[str, Any] | None) -> list[str]:
    if not stampede:
        return []
    lines = [f"## 3. Cold-key stampede ({stampede['readers']} readers, all accounts)", ""]
    header = ["strategy", "dashboard queries", "emails rows read", "read p50 ms", "read p99 ms"]
    rows = [
        [
            name,
            s["dashboard_queries"],
            s["emails_rows_read"],
            s["reads"]["p50_ms"],
            s["reads"]["p99_ms"],
        ]
        for name, s in stampede["strategies"].items()
    ]
    return lines + _table(header, rows)


def _recompute(sizes: list[dict[str, Any]] | None) -> list[str]:
    if not sizes:
        return []
    lines = ["## 4. Recompute every number vs refresh a materialized view (medians)", ""]
    header = [
        "emails", "scopes", "recompute_every_scope ms", "REFRESH ms", "REFRESH CONCURRENTLY ms",
        "recompute / REFRESH", "recompute / CONCURRENTLY",
    ]  # fmt: skip
    rows = [
        [
            s["emails"],
            s["scopes"],
            s["median_ms"]["recompute_every_scope"],
            s["median_ms"]["refresh_matview"],
            s["median_ms"]["refresh_matview_concurrently"],
            s["recompute_x_refresh"],
            s["recompute_x_refresh_concurrently"],
        ]
        for s in sizes
    ]
    return lines + _table(header, rows)
