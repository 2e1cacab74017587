"""`dashcache cdc run | check | drop`: the WAL source of changes (PostgreSQL only)."""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType

import click

from dashcache.cdc.readiness import problems, read_facts
from dashcache.cdc.runner import Consumer, mapped_tables_sql
from dashcache.cdc.slot import drop_publication, drop_slot
from dashcache.cli.support import EXIT_USAGE, friendly_errors
from dashcache.config import Settings
from dashcache.errors import ConfigError
from dashcache.keys import KeySchema
from dashcache.schema.check import engine_for
from dashcache.store import make_redis


@click.group()
def cdc() -> None:
    """Change data capture: every committed change, from PostgreSQL's WAL."""


def _postgres_only(settings: Settings) -> None:
    if not settings.database_url.startswith("postgresql"):
        raise ConfigError(
            "the WAL source needs PostgreSQL (DATABASE_URL=postgresql://...); SQLite has no WAL: "
            "keep publishing events from the app"
        )


@cdc.command("run")
@click.pass_obj
@friendly_errors
def cdc_run(settings: Settings) -> None:
    """Stream the mapped tables' changes into the cached values (standby while another runs)."""
    _postgres_only(settings)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    Consumer(settings, stop).run()


@cdc.command("check")
@click.pass_obj
@friendly_errors
def cdc_check(settings: Settings) -> None:
    """Exit 0 when the database is ready for `cdc run`; else exit 2 naming each fix."""
    _postgres_only(settings)
    engine = engine_for(settings)
    try:
        emails, _ = mapped_tables_sql(engine)
        with engine.connect() as conn:
            found = problems(read_facts(conn, settings.cdc_slot, emails))
    finally:
        engine.dispose()
    for problem in found:
        click.echo(problem)
    if found:
        sys.exit(EXIT_USAGE)
    click.echo(f"ready: slot {settings.cdc_slot}, publication {settings.cdc_publication}")


@cdc.command("drop")
@click.pass_obj
@friendly_errors
def cdc_drop(settings: Settings) -> None:
    """Drop the slot and the publication (stop every `cdc run` first): WAL is kept no more."""
    _postgres_only(settings)
    engine = engine_for(settings)
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            dropped = drop_slot(conn, settings.cdc_slot)
            drop_publication(conn, settings.cdc_publication)
    finally:
        engine.dispose()
    client = make_redis(settings.redis_url, settings.redis_timeout_seconds)
    try:
        client.delete(KeySchema(settings.key_prefix).cdc_status)
    finally:
        client.close()
    what = "dropped" if dropped else "not found"
    click.echo(f"slot {settings.cdc_slot} {what}; publication {settings.cdc_publication} dropped")
