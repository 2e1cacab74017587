"""The `dashcache` command: set up the database, seed demo data, warm and read values.

The observability commands (stats, health, metrics) live in `dashcache.cli.observe`. Commands of
other packages join through the `dashcache.commands` entry point group: `bench` (the
`bench` package) does, so `shared` never imports the benchmarks.
"""

from __future__ import annotations

import json
import sys
import time
from importlib.metadata import entry_points

import click
from sqlalchemy import Engine

from dashcache import clock
from dashcache.cli.cdc import cdc
from dashcache.cli.observe import health, metrics, stats, status
from dashcache.cli.schema import refuse_on_mapped_schema, schema
from dashcache.cli.support import EXIT_DIFFERENT, friendly_errors
from dashcache.config import Settings
from dashcache.db import init_db, make_engine
from dashcache.keys import KeySchema
from dashcache.logging import configure_logging, redact
from dashcache.metrics import metrics_for
from dashcache.observe.verify import verify as verify_cache
from dashcache.reader import DashboardReader
from dashcache.recompute import recompute_every_scope, recompute_scope
from dashcache.schema.check import engine_for
from dashcache.store import RedisStore, make_redis


@click.group()
@click.pass_context
@friendly_errors
def main(ctx: click.Context) -> None:
    """Keep an email app's dashboard statistics warm in Redis."""
    settings = Settings.from_env()
    configure_logging(settings)
    ctx.obj = settings


main.add_command(stats)
main.add_command(health)
main.add_command(metrics)
main.add_command(status)
main.add_command(schema)
main.add_command(cdc)
for command in entry_points(group="dashcache.commands"):
    main.add_command(command.load(), command.name)


@main.group()
def db() -> None:
    """Database commands."""


@db.command("init")
@click.pass_obj
@friendly_errors
def db_init(settings: Settings) -> None:
    """Create the emails and categories tables (idempotent)."""
    refuse_on_mapped_schema(settings, "db init")
    engine = make_engine(settings.database_url)
    init_db(engine)
    click.echo(f"tables ready in {redact(settings.database_url)}")


@main.command()
@click.option("--emails", type=int, required=True, help="Emails to add.")
@click.option("--categories", type=int, default=12, show_default=True)
@click.option("--accounts", type=int, default=10, show_default=True)
@click.option("--days", type=int, default=30, show_default=True, help="Spread of created_at.")
@click.option("--seed", "seed_value", type=int, default=0, show_default=True)
@click.pass_obj
@friendly_errors
def seed(
    settings: Settings, emails: int, categories: int, accounts: int, days: int, seed_value: int
) -> None:
    """Add reproducible demo emails (creates the tables first if missing)."""
    from dashcache.seed import SeedPlan, seed_database

    refuse_on_mapped_schema(settings, "seed")
    plan = SeedPlan(emails, categories, accounts, days, seed_value)
    engine = make_engine(settings.database_url)
    init_db(engine)
    with click.progressbar(length=emails, label="seeding emails", file=sys.stderr) as bar:
        inserted = seed_database(engine, plan, clock.now(), progress=bar.update)
    click.echo(f"inserted {inserted} emails")


@main.command()
@click.option("--account-id", type=int, default=None, help="One account; default: every scope.")
@click.pass_obj
@friendly_errors
def warm(settings: Settings, account_id: int | None) -> None:
    """Recompute now, in this process, and write through the fence.

    Values found wrong (changed by nobody's events) are repaired, logged and counted as drift
    of trigger `warm`, shown by `dashcache stats`.
    """
    engine, store = _worker_connections(settings)
    metrics = metrics_for(settings)
    started = time.perf_counter()
    try:
        if account_id is None:
            result = recompute_every_scope(engine, store, settings.max_breakdown)
        else:
            result = recompute_scope(engine, store, account_id, settings.max_breakdown)
    finally:
        store.client.close()
        engine.dispose()
    metrics.record_recompute("warm", result.outcome, time.perf_counter() - started, result.fenced)
    metrics.count_drift(result.drift, "warm")
    metrics.flush()
    summary = {
        "scopes": result.scopes,
        "written": result.written,
        "fenced": result.fenced,
        "drift": len(result.drift),
        "generation": result.generation,
    }
    click.echo(json.dumps(summary))


@main.command()
@click.argument("what", type=click.Choice(["aggregates", "breakdown"]))
@click.option("--limit", type=int, default=10, show_default=True, help="Breakdown size.")
@click.option("--account-id", type=int, default=None, help="One account; default: all accounts.")
@click.option("--fresh", is_flag=True, help="Compute from the database now.")
@click.option("--max-age", type=float, default=None, help="Treat an older cached value as missing.")
@click.pass_obj
@friendly_errors
def get(
    settings: Settings,
    what: str,
    limit: int,
    account_id: int | None,
    fresh: bool,
    max_age: float | None,
) -> None:
    """Print one dashboard value as JSON, the way a web process reads it."""
    reader = DashboardReader.from_settings(settings)
    try:
        if what == "aggregates":
            value = reader.get_aggregates(account_id=account_id, fresh=fresh, max_age=max_age)
        else:
            value = reader.get_category_breakdown(
                limit=limit, account_id=account_id, fresh=fresh, max_age=max_age
            )
    finally:
        reader.close()
    body = {
        "data": value.data,
        "computed_at": value.computed_at.isoformat(),
        "age": round(value.age, 3),
        "source": value.source,
        "stale": value.stale,
        "generation": value.generation,
    }
    click.echo(json.dumps(body, indent=2, ensure_ascii=False))


@main.command()
@click.pass_obj
@friendly_errors
def verify(settings: Settings) -> None:
    """Compare every warmed value with a fresh computation as of its computed_at.

    Prints each difference and exits 1 when there is one; run it once writes have quiesced.
    """
    engine, store = _worker_connections(settings)
    try:
        report = verify_cache(engine, store, settings.max_breakdown)
    finally:
        store.client.close()
        engine.dispose()
    for difference in report.differences:
        click.echo(str(difference))
    keys = len({difference.key for difference in report.differences})
    click.echo(f"checked {report.checked} values: {keys} differ, {report.missing} missing")
    if not report.ok:
        sys.exit(EXIT_DIFFERENT)


def _worker_connections(settings: Settings) -> tuple[Engine, RedisStore]:
    """An engine and a store with the worker's patience, not a reader's short timeouts: a pass
    over every scope may take longer than a reader may wait."""
    client = make_redis(settings.redis_url, max(settings.redis_timeout_seconds, 5.0))
    keys = KeySchema(settings.key_prefix)
    store = RedisStore(client, keys, settings.ttl_seconds, settings.max_value_bytes)
    return engine_for(settings), store
