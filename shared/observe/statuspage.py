"""The status page's HTML, rendered from `read_status`'s dict (pure; see `dashcache.observe.html`).

The page loads once; its script fetches `/panels` every few seconds, parses it inertly
(DOMParser) and copies it into the page node by node through an allow-list of tags and
attributes, text always as text: no `innerHTML`, no full reload.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from dashcache.observe.chart import line_chart
from dashcache.observe.html import Html, join, tag
from dashcache.observe.statusassets import SCRIPT, STYLE

NA = "—"
CDC_SILENT_SECONDS = 10.0
"""A WAL consumer writes its status every second: silent longer than this, it is not running."""


def page(data: dict[str, Any]) -> Html:
    """The whole page: header, the panels, the refresh script."""
    shown = data["settings"]
    head = join(
        Html('<meta charset="utf-8">'),
        tag("title", "dashcache status"),
        tag("style", Html(STYLE)),
    )
    header = tag(
        "header",
        tag("h1", "dashcache status"),
        tag("small", f"Redis {shown['redis_url']} · prefix {shown['key_prefix']}"),
        tag("small", "", id="note"),
    )
    body = join(header, panels(data), tag("script", Html(SCRIPT)))
    return Html("<!doctype html>" + tag("html", tag("head", head), tag("body", body), lang="en"))


def panels(data: dict[str, Any]) -> Html:
    """Every panel, in the element the script swaps."""
    if data["redis"] != "ok":
        down = tag(
            "div",
            tag("h2", "Redis unreachable"),
            tag("p", data["error"]),
            tag("p", f"as of {data['now']}; this page retries every few seconds"),
            class_="down",
            data_field="redis",
        )
        return tag("div", down, id="panels")
    sections = [
        _values(data),
        _schedule(data["schedule"], data["settings"], data["now"]),
        _events(data["events"], data["cdc"], data["now"]),
        _drift(data),
        _dead_letters(data["dead_letters"]),
        _queues(data["queues"]),
        _charts(data["series"]),
    ]
    updated = tag("p", f"updated {data['now']}", class_="muted", data_field="now")
    return tag("div", *sections, tag("section", updated, class_="wide"), id="panels")


def _values(data: dict[str, Any]) -> Html:
    soft = data["settings"]["soft_age_seconds"]
    head = _row("th", "kind", "values", "age p50", "age p99", "oldest", f"past soft age ({soft} s)")
    rows = [
        tag(
            "tr",
            tag("td", kind),
            _cell(row["count"], f"values.{kind}.count"),
            _cell(_seconds(row["age_p50_seconds"]), f"values.{kind}.age_p50_seconds"),
            _cell(_seconds(row["age_p99_seconds"]), f"values.{kind}.age_p99_seconds"),
            _cell(_seconds(row["oldest_seconds"]), f"values.{kind}.oldest_seconds"),
            _cell(row["past_soft_age"], f"values.{kind}.past_soft_age", bad=row["past_soft_age"]),
        )
        for kind, row in data["values"].items()
    ]
    stats = data["stats"]
    summary = tag(
        "p",
        tag("span", stats["scopes_warmed"], data_field="stats.scopes_warmed"),
        " scopes warmed, ",
        tag("span", stats["values_missing"], data_field="stats.values_missing"),
        " values missing; writes go to ",
        tag("span", data["settings"].get("redis_primary", "-"), data_field="redis.primary"),
    )
    return _section("Values", tag("table", head, *rows), summary)


def _schedule(schedule: dict[str, Any], shown: dict[str, Any], now: str) -> Html:
    last = schedule["last_pass"]
    run = schedule["last_scheduled_run"]
    at = last["at"] if last is not None else run["at"] if run is not None else None
    rows: list[tuple[str, Any, str | None]] = [
        (
            "last pass",
            "no pass yet" if at is None else _ago(now, at),
            "schedule.last_at",
        )
    ]
    if last is not None:
        rows += [
            ("took", f"{last['duration_ms']:.0f} ms", "schedule.last_pass.duration_ms"),
            ("scopes written", last["scopes"], "schedule.last_pass.scopes"),
            ("shards", last["shards"], "schedule.last_pass.shards"),
            ("idle accounts dropped", last["idle_dropped"], "schedule.last_pass.idle_dropped"),
        ]
    due, wait = schedule["next_due"], schedule["next_due_in_seconds"]
    if due is None:
        next_due = "not scheduled (no beat has installed the schedule)"
    elif wait < -shown["refresh_seconds"]:
        next_due = f"{due} (overdue by {-wait:.0f} s: is beat running?)"
    else:
        next_due = f"{due} (in {max(wait, 0):.0f} s)"
    rows += [
        ("next due", next_due, "schedule.next_due"),
        ("period", f"{shown['refresh_seconds']} s", None),
    ]
    return _section("Schedule", _pairs(rows))


def _events(events: dict[str, Any], cdc: dict[str, Any] | None, now: str) -> Html:
    head = _row("th", "events", "last minute", "this minute", "last hour", "since start")
    totals = events["totals"]
    since = {**totals, "recomputed": events["recomputed_total"]}
    rows = [
        tag(
            "tr",
            tag("td", name),
            _cell(counts["last_minute"], f"events.per_minute.{name}.last_minute"),
            _cell(counts["this_minute"], f"events.per_minute.{name}.this_minute"),
            _cell(counts["last_hour"], f"events.per_minute.{name}.last_hour"),
            _cell(since[name], f"events.totals.{name}"),
        )
        for name, counts in events["per_minute"].items()
    ]
    others = ", ".join(f"{name} {count}" for name, count in totals.items())
    table = join(tag("table", head, *rows), tag("p", others, class_="muted"))
    if cdc is None:
        wal = tag("p", "WAL source: not running", data_field="cdc")
    else:
        lag = cdc["lag_seconds"]
        wal = _pairs(
            [
                ("slot", f"{cdc['slot']} (publication {cdc['publication']})", "cdc.slot"),
                ("commit-to-visible lag", NA if lag is None else f"{lag * 1000:.0f} ms", "cdc.lag"),
                ("retained WAL", _bytes(cdc["retained_bytes"]), "cdc.retained_bytes"),
                ("active consumer", cdc["active_consumer"] or NA, "cdc.active_consumer"),
                ("confirmed LSN", cdc["confirmed_lsn"] or NA, "cdc.confirmed_lsn"),
                ("updated", _updated(now, cdc["updated_at"]), "cdc.updated_at"),
            ]
        )
    return _section("Events and the WAL source", table, tag("h2", "WAL source"), wal)


def _drift(data: dict[str, Any]) -> Html:
    drift = data["drift"]
    parts = [
        tag("table", *(tag("tr", tag("td", k), _cell(n, f"drift.{k}")) for k, n in drift.items()))
    ]
    by_trigger = data["drift_by_trigger"]
    if by_trigger:
        kinds = list(drift)
        parts.append(tag("h2", "drift by trigger"))
        rows = [
            tag("tr", tag("td", trigger), *(_cell(counts.get(kind, 0), None) for kind in kinds))
            for trigger, counts in by_trigger.items()
        ]
        parts.append(tag("table", _row("th", "trigger", *kinds), *rows))
    return _section("Drift (values the pass found wrong and repaired)", *parts)


def _dead_letters(letters: dict[str, Any]) -> Html:
    total = tag("p", tag("span", letters["total"], data_field="dead_letters.total"), " in total")
    if not letters["latest"]:
        return _section("Dead letters", total, tag("p", "none", class_="muted"))
    rows = [
        tag(
            "tr",
            tag("td", entry.get("rejected_at") or NA),
            tag("td", entry.get("reason") or NA, data_field="dead_letters.reason"),
            tag("td", entry.get("field") or NA),
            tag("td", tag("code", entry.get("payload") or "", data_field="dead_letters.payload")),
        )
        for entry in letters["latest"]
    ]
    table = tag("table", _row("th", "rejected at", "reason", "field", "payload"), *rows)
    return _section("Dead letters (latest first)", total, table, class_="wide")


def _queues(queues: dict[str, Any]) -> Html:
    def depth(name: str) -> str | int:
        return "n/a" if queues[name] is None else int(queues[name])

    rows = [
        ("schedule queue", depth("schedule"), "queues.schedule"),
        ("events queue", depth("events"), "queues.events"),
        ("broker", queues["broker"], None),
    ]
    error = tag("p", queues["error"], class_="bad") if queues["error"] else None
    return _section("Queues (messages waiting)", _pairs(rows), error)


def _charts(series: dict[str, Any]) -> Html:
    minutes = series["minutes"]
    lag = line_chart("commit-to-visible lag", minutes, {"lag, max ms": series["cdc_lag_ms"]}, "ms")
    rates: dict[str, Sequence[float | None]] = {
        name.replace("events_", ""): [point or 0 for point in series[name]]
        for name in ("events_received", "events_applied", "events_recomputed")
    }
    events = line_chart("events per minute", minutes, rates, "per minute")
    return _section("Last hour", tag("div", lag, events, class_="charts"), class_="wide")


def _section(title: str, *children: Html | None, class_: str | None = None) -> Html:
    return tag("section", tag("h2", title), *children, class_=class_)


def _pairs(rows: Sequence[tuple[str, Any, str | None]]) -> Html:
    return tag("table", *(tag("tr", tag("th", k), tag("td", v, data_field=f)) for k, v, f in rows))


def _row(cell: str, *texts: str) -> Html:
    return tag("tr", *(tag(cell, text) for text in texts))


def _cell(value: Any, field: str | None, bad: int = 0) -> Html:
    return tag("td", value, data_field=field, class_="n bad" if bad else "n")


def _age(now: str, then: str) -> float | None:
    try:
        return max((datetime.fromisoformat(now) - datetime.fromisoformat(then)).total_seconds(), 0)
    except (TypeError, ValueError):
        return None


def _ago(now: str, then: str) -> str:
    age = _age(now, then)
    return then if age is None else f"{then} ({_seconds(age)} ago)"


def _updated(now: str, then: str | None) -> Html | str:
    if then is None:
        return NA
    age = _age(now, then)
    if age is not None and age > CDC_SILENT_SECONDS:
        return tag("span", f"{_ago(now, then)}: the consumer is not writing", class_="bad")
    return _ago(now, then)


def _seconds(value: float | None) -> str:
    if value is None:
        return NA
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


def _bytes(value: int | None) -> str:
    if value is None:
        return NA
    size = float(value)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"
