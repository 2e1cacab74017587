"""`dashcache bench`: the quick profile, shrunk, runs end to end against real services."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import redis
from click.testing import CliRunner
from sqlalchemy import Engine, text

from dashcache.bench.harness import STRATEGIES
from dashcache.bench.scale import measure
from dashcache.bench.staleness import ProgressClock
from dashcache.cli import main
from dashcache.config import Settings
from tests.helpers import wait_until

SCENARIOS = ("latency", "mixed", "stampede", "recompute")


def per_read(strategy: dict[str, Any], counter: str) -> float:
    """A strategy's database counter in the mixed load divided by the reads it served."""
    return float(strategy[counter]) / strategy["reads"]["n"]


def test_quick_profile_reports_every_strategy_and_holds_the_invariants(
    settings: Settings, tmp_path: Path
) -> None:
    """Every scenario reports every strategy; per read, dashcache queries less than live; values
    converge."""
    out = tmp_path / "results"
    args = ["bench", "--profile", "quick", "--emails", "3000", "--time-scale", "0.2"]
    result = CliRunner().invoke(main, [*args, "--out", str(out)], env=settings.to_env())
    assert result.exit_code == 0, result.output
    report = json.loads((out / "results.json").read_text())
    assert all(report[scenario] for scenario in SCENARIOS)
    assert {"cores", "memory_gb", "cpu_model", "versions"} <= report["machine"].keys()
    assert report["recompute"][0]["emails"] == report["rows"] == 3000
    mixed = report["mixed"]["strategies"]
    assert list(mixed) == list(STRATEGIES) == list(report["stampede"]["strategies"])
    assert set(STRATEGIES) < report["latency"]["scopes"]["all accounts"].keys()
    live, dashcache = mixed["live"], mixed["dashcache"]
    assert live["dashboard_queries"] >= live["reads"]["n"]  # live: every read is a query
    # Per read, so the strategies' different read throughputs on this machine cancel out.
    for counter in ("dashboard_queries", "emails_rows_read"):
        assert per_read(dashcache, counter) < per_read(live, counter), counter
    assert all(s["read_errors"] == 0 for s in mixed.values())
    for name, strategy in mixed.items():
        raced = strategy.get("racing_sets", 0) > 0  # ttl-invalidate's race leaves old values
        assert strategy["final_matches_truth"] or raced, name
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = (out / "results.md").read_text()
    assert "## 2. Mixed load" in markdown
    assert "## Targets" in markdown


def test_staleness_counts_from_the_first_commit_a_value_misses() -> None:
    """A value missing commit k+1 was behind since it; commits after the read began do not count."""
    progress = ProgressClock(base=100, commits=[10.0, 11.0, 12.0])
    behind = {"total_emails": 301, "unread_count": 200}  # reflects 1 of 3 commits
    current = {"total_emails": 303, "unread_count": 200}
    assert progress.behind(behind, read_started=12.5) == 1.5
    assert progress.behind(behind, read_started=10.5) == 0.0
    assert progress.behind(current, read_started=20.0) == 0.0


def test_scale_measures_every_scope_of_its_own_database(
    settings: Settings, redis_client: redis.Redis
) -> None:
    """`dashcache.bench.scale` warms every account it seeded plus all accounts, and reports the pass
    against the query alone; it leaves no key behind."""
    row = measure(settings, accounts=30, emails=2000, repeats=1)
    assert row["emails"] == 2000
    assert row["values_written"] == 2 * row["scopes"]
    assert 2 <= row["scopes"] <= 31
    assert min(row["pass_ms"], row["query_ms"], row["redis_bytes_per_scope"]) > 0
    assert list(redis_client.scan_iter("bench-scale-*")) == []


def bench_databases(pg: Engine) -> set[str]:
    """The benchmarks' databases on the server right now."""
    query = text("SELECT datname FROM pg_database WHERE datname LIKE 'dashcache_bench_%'")
    with pg.connect() as conn:
        return set(conn.scalars(query))


def test_a_bench_stopped_with_sigterm_drops_its_database(settings: Settings, pg: Engine) -> None:
    """SIGTERM (a timeout, a cancelled job) unwinds the bench like Ctrl-C: its database goes."""
    before = bench_databases(pg)
    command = [
        sys.executable,
        "-m",
        "dashcache.bench.scale",
        "--emails",
        "300000",
        "--accounts",
        "100",
    ]
    env = {**os.environ, **settings.to_env()}
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    bench = subprocess.Popen(command, env=env, **quiet)
    try:
        wait_until(lambda: bench_databases(pg) - before, "the bench to create its database")
        bench.send_signal(signal.SIGTERM)
        assert bench.wait(60) == 128 + signal.SIGTERM
    finally:
        bench.kill()
    assert bench_databases(pg) - before == set()


SIGTERM_INSIDE_A_LIBRARY = """
import os, signal, sys, time
from dashcache.bench.shutdown import exits_on_sigterm

@exits_on_sigterm
def main():
    try:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)
        except SystemExit as error:  # what psycopg2 does to an error in its COPY callback
            raise RuntimeError("COPY from stdin failed: SystemExit 143") from error
    finally:
        print("cleaned up", flush=True)

main()
"""


def test_sigterm_turned_into_another_error_still_exits_with_the_signal() -> None:
    """A library that turns the signal's SystemExit into its own error (psycopg2's COPY does)
    does not change the outcome: the cleanup runs and the bench exits 128 + SIGTERM."""
    done = subprocess.run(
        [sys.executable, "-c", SIGTERM_INSIDE_A_LIBRARY],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 128 + signal.SIGTERM, done.stderr
    assert done.stdout == "cleaned up\n"
