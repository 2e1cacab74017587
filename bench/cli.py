"""`dashcache bench`: the strategies side by side on real PostgreSQL and Redis."""

from __future__ import annotations

import shlex
from dataclasses import replace
from pathlib import Path

import click

from dashcache.bench.profiles import PROFILES
from dashcache.bench.shutdown import exits_on_sigterm
from dashcache.cli.schema import refuse_on_mapped_schema
from dashcache.cli.support import friendly_errors
from dashcache.config import Settings
from dashcache.errors import ConfigError
from dashcache.logging import configure_logging


@click.command()
@click.option("--profile", "profile_name", type=click.Choice(sorted(PROFILES)), default="quick")
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), required=True,
    help="Directory for results.json, results.md and results.png.",
)  # fmt: skip
@click.option(
    "--emails", type=int, multiple=True,
    help="Table sizes instead of the profile's (repeatable, ascending).",
)  # fmt: skip
@click.option(
    "--time-scale", type=float, default=1.0, show_default=True,
    help="Multiply durations, the burst and the rounds (0 < x <= 1) for a shorter run.",
)  # fmt: skip
@click.option("--with-10m", is_flag=True, help="Also time recomputes at 10,000,000 emails.")
@click.pass_obj
@friendly_errors
@exits_on_sigterm
def bench(
    settings: Settings,
    profile_name: str,
    out: Path,
    emails: tuple[int, ...],
    time_scale: float,
    with_10m: bool,
) -> None:
    """Compare live, ttl-invalidate, matview and dashcache in one run (needs PostgreSQL).

    Creates and drops a database of its own on the server of DATABASE_URL; uses REDIS_URL and
    CELERY_BROKER_URL under a key prefix of its own. Progress goes to stderr; the worker's and
    beat's logs to DIR/logs.
    """
    try:
        from dashcache.bench.runner import run_bench
    except ImportError as error:
        raise ConfigError(
            f"the bench needs its optional dependencies: pip install 'dashcache[bench]' ({error})"
        ) from None
    refuse_on_mapped_schema(settings, "bench")
    if not settings.database_url.startswith("postgresql"):
        raise ConfigError("DATABASE_URL must point at a PostgreSQL server for the bench")
    # The progress lines are this process's output; its readers' own logs would drown them.
    configure_logging(replace(settings, log_level="WARNING"))
    profile = PROFILES[profile_name]
    if emails:
        profile = profile.with_sizes(emails)
    if time_scale != 1.0:
        profile = profile.scaled(time_scale)
    args = ["dashcache", "bench", "--profile", profile_name, "--out", str(out)]
    args += [f"--emails={size}" for size in emails]
    args += [f"--time-scale={time_scale:g}"] * (time_scale != 1.0) + ["--with-10m"] * with_10m
    run_bench(settings, profile, out, shlex.join(args), ten_million=with_10m)
