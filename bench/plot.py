"""The results as one PNG: read latency, database load under mixed load, recompute vs refresh."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt

COLORS = {
    "live": "#c0392b",
    "ttl-invalidate": "#e67e22",
    "matview": "#2980b9",
    "dashcache": "#27ae60",
    "raw-redis-get": "#7f8c8d",
}


def write_png(results: dict[str, Any], path: Path) -> None:
    """Three panels side by side; a scenario that did not run leaves its panel out."""
    panels = [p for p in (_latency, _db_load, _recompute) if p.__name__[1:] in _present(results)]
    figure, _ = plt.subplots(1, max(len(panels), 1), figsize=(5.2 * max(len(panels), 1), 4.2))
    for axis, panel in zip(figure.axes, panels, strict=False):
        panel(axis, results)
    figure.suptitle(
        f"dashcache bench ({results['profile']['name']}, {results['rows']:,} emails)", fontsize=11
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _present(results: dict[str, Any]) -> set[str]:
    names = {"latency": "latency", "mixed": "db_load", "recompute": "recompute"}
    return {panel for key, panel in names.items() if results.get(key)}


def _latency(axis: Any, results: dict[str, Any]) -> None:
    scope = results["latency"]["scopes"]["all accounts"]
    names = [name for name in scope if isinstance(scope[name], dict)]
    values = [scope[name]["p50_ms"] for name in names]
    axis.bar(names, values, color=[COLORS.get(name, "grey") for name in names])
    axis.set_yscale("log")
    axis.set_ylabel("p50 read latency, ms (log)")
    axis.set_title("1. Read latency, all accounts")
    axis.tick_params(axis="x", rotation=30)


def _db_load(axis: Any, results: dict[str, Any]) -> None:
    strategies = results["mixed"]["strategies"]
    names = list(strategies)
    seconds = [strategies[name]["dashboard_db_seconds"] for name in names]
    bars = axis.bar(names, seconds, color=[COLORS.get(name, "grey") for name in names])
    for bar, name in zip(bars, names, strict=True):
        queries = strategies[name]["dashboard_queries"]
        axis.annotate(
            f"{queries:,} q",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    axis.set_ylabel("DB time on dashboard queries, s")
    axis.set_title("2. Database load, mixed load")
    axis.tick_params(axis="x", rotation=30)


def _recompute(axis: Any, results: dict[str, Any]) -> None:
    sizes = results["recompute"]
    emails = [s["emails"] for s in sizes]
    for key, label in (
        ("recompute_every_scope", "dashcache recompute_every_scope"),
        ("refresh_matview", "REFRESH MATERIALIZED VIEW"),
        ("refresh_matview_concurrently", "REFRESH ... CONCURRENTLY"),
    ):
        axis.plot(emails, [s["median_ms"][key] for s in sizes], marker="o", label=label)
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("emails")
    axis.set_ylabel("median ms (log)")
    axis.set_title("4. Recompute every number")
    axis.legend(fontsize=7)
