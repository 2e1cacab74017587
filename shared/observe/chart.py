"""A small line chart as inline SVG, drawn on the server: no script, no library, works offline."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from dashcache.observe.html import Html, tag

WIDTH = 600
HEIGHT = 140
LEFT = 48
BOTTOM = 20
TOP = 8


def line_chart(
    label: str, minutes: Sequence[int], lines: dict[str, Sequence[float | None]], unit: str
) -> Html:
    """One polyline per series over `minutes` (a gap where a minute has no number), with the
    peak on the y axis and the first and last minute on the x axis."""
    peak = max((value for values in lines.values() for value in values if value), default=0.0)
    top = peak or 1.0
    span = max(len(minutes) - 1, 1)
    plot_h = HEIGHT - BOTTOM - TOP
    parts = [
        tag("line", x1=LEFT, y1=TOP, x2=LEFT, y2=HEIGHT - BOTTOM, class_="axis"),
        tag("line", x1=LEFT, y1=HEIGHT - BOTTOM, x2=WIDTH, y2=HEIGHT - BOTTOM, class_="axis"),
        tag("text", _short(peak), x=LEFT - 4, y=TOP + 10, text_anchor="end"),
        tag("text", "0", x=LEFT - 4, y=HEIGHT - BOTTOM, text_anchor="end"),
    ]
    if minutes:
        for minute, anchor, x in ((minutes[0], "start", LEFT), (minutes[-1], "end", WIDTH)):
            clock = datetime.fromtimestamp(minute, UTC).strftime("%H:%M")
            parts.append(tag("text", clock, x=x, y=HEIGHT - 4, text_anchor=anchor))
    for index, (name, values) in enumerate(lines.items()):
        for run in _runs(values):
            points = " ".join(
                f"{LEFT + (WIDTH - LEFT) * i / span:.1f},"
                f"{HEIGHT - BOTTOM - plot_h * value / top:.1f}"
                for i, value in run
            )
            parts.append(tag("polyline", points=points, class_=f"line{index}"))
        parts.append(tag("text", name, x=LEFT + 8 + 150 * index, y=TOP + 10, class_=f"key{index}"))
    return tag(
        "svg",
        tag("title", f"{label} ({unit}), last hour"),
        *parts,
        viewBox=f"0 0 {WIDTH} {HEIGHT}",
        role="img",
        aria_label=label,
        class_="chart",
    )


def _runs(values: Sequence[float | None]) -> list[list[tuple[int, float]]]:
    """Consecutive minutes that have a number, with their index (a point alone is kept)."""
    runs: list[list[tuple[int, float]]] = []
    current: list[tuple[int, float]] = []
    for i, value in enumerate(values):
        if value is None:
            if current:
                runs.append(current)
            current = []
        else:
            current.append((i, value))
    if current:
        runs.append(current)
    return [run if len(run) > 1 else run * 2 for run in runs]


def _short(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:.3g}"
