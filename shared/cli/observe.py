"""`dashcache stats`, `health`, `metrics serve` and `status serve`: what operators look at."""

from __future__ import annotations

import json
import sys

import click
from sqlalchemy import Engine

from dashcache import clock
from dashcache.cli.support import friendly_errors
from dashcache.config import Settings
from dashcache.db import make_engine
from dashcache.keys import KeySchema
from dashcache.observe.freshness import read_freshness
from dashcache.observe.health import run_checks
from dashcache.observe.prometheus import serve
from dashcache.observe.report import read_report, render_table
from dashcache.observe.statusserver import serve as serve_status
from dashcache.store import make_redis

EXIT_UNHEALTHY = 1
PROBE_CONNECT_TIMEOUT_SECONDS = 5
DEFAULT_METRICS_PORT = 9108
DEFAULT_STATUS_PORT = 9109
LOOPBACK = "127.0.0.1"
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 (Prometheus scrapes from other hosts)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object, for scripts.")
@click.pass_obj
@friendly_errors
def stats(settings: Settings, as_json: bool) -> None:
    """Hit ratio, counts of every process, the oldest value and the last scheduled run."""
    client = make_redis(settings.redis_url, settings.redis_timeout_seconds)
    keys = KeySchema(settings.key_prefix)
    try:
        body = read_report(client, keys, read_freshness(client, keys, clock.now()))
    finally:
        client.close()
    click.echo(json.dumps(body, indent=2) if as_json else render_table(body))


@click.command()
@click.pass_obj
@friendly_errors
def health(settings: Settings) -> None:
    """Exit 0 when all is well; otherwise exit 1 with one line per failed check."""
    client = make_redis(settings.redis_url, settings.redis_timeout_seconds)
    engine = _probe_engine(settings.database_url)
    try:
        checks = run_checks(settings, client, engine, clock.now())
    finally:
        client.close()
        engine.dispose()
    failed = [check for check in checks if not check.ok]
    for check in failed:
        click.echo(f"{check.name}: {check.detail}")
    if failed:
        sys.exit(EXIT_UNHEALTHY)
    click.echo("ok: " + "; ".join(f"{check.name}: {check.detail}" for check in checks))


@click.group()
def metrics() -> None:
    """Prometheus metrics."""


@metrics.command("serve")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=DEFAULT_METRICS_PORT, show_default=True
)
@click.option("--addr", default=ALL_INTERFACES, show_default=True, help="Address to listen on.")
@click.pass_obj
@friendly_errors
def metrics_serve(settings: Settings, port: int, addr: str) -> None:
    """Serve /metrics for Prometheus: totals of every process, read from Redis per scrape."""
    client = make_redis(settings.redis_url, settings.redis_timeout_seconds)
    serve(client, KeySchema(settings.key_prefix), port, addr)


@click.group()
def status() -> None:
    """The live status page for operators."""


@status.command("serve")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=DEFAULT_STATUS_PORT, show_default=True
)
@click.option(
    "--addr",
    default=LOOPBACK,
    show_default=True,
    help="Address to listen on (the page shows data).",
)
@click.pass_obj
@friendly_errors
def status_serve(settings: Settings, port: int, addr: str) -> None:
    """Serve the status page at / and its data at /status.json, read from Redis per request."""
    try:
        serve_status(settings, addr, port)
    except OSError as error:
        raise click.ClickException(f"cannot listen on {addr}:{port}: {error}") from error


def _probe_engine(database_url: str) -> Engine:
    """An engine that gives up connecting quickly, as a probe must."""
    if database_url.startswith("postgresql"):
        return make_engine(
            database_url, connect_args={"connect_timeout": PROBE_CONNECT_TIMEOUT_SECONDS}
        )
    return make_engine(database_url)
