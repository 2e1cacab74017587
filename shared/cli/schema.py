"""`dashcache schema check`: the schema mapping as resolved, checked against the database."""

from __future__ import annotations

import click

from dashcache.cli.support import friendly_errors
from dashcache.config import Settings
from dashcache.errors import ConfigError
from dashcache.schema.check import check_schema, engine_for
from dashcache.schema.mapping import describe
from dashcache.schema.tables import created_index_ddl, index_ddl, tables_of


@click.group()
def schema() -> None:
    """The schema mapping (DASHCACHE_SCHEMA_FILE)."""


@schema.command("check")
@click.pass_obj
@friendly_errors
def schema_check(settings: Settings) -> None:
    """Check the mapping against the database; print it and the index that serves the passes.

    Exits 2 naming every mismatch (missing table or column, wrong type).
    """
    engine = engine_for(settings)
    try:
        mapping = tables_of(engine).mapping
        check_schema(engine, mapping)  # the demo schema too: `engine_for` trusts that one
        click.echo(f"# mapping: {mapping.source or 'the demo schema (no DASHCACHE_SCHEMA_FILE)'}")
        click.echo(describe(mapping))
        scope = "per-account pass" if mapping.multi_tenant else "all-accounts pass"
        click.echo(f"\n# the index that serves the {scope} on these columns:")
        click.echo(index_ddl(mapping, engine.dialect))
        click.echo("# the index that serves the window crossings a recount counts (created_at):")
        click.echo(created_index_ddl(mapping, engine.dialect))
    finally:
        engine.dispose()
    click.echo("\nok: the mapping fits the database")


def refuse_on_mapped_schema(settings: Settings, command: str) -> None:
    """Stop a command that creates or fills dashcache's demo tables when a mapping is set."""
    if settings.schema_file is not None:
        raise ConfigError(
            f"{command} creates and fills dashcache's demo tables; DASHCACHE_SCHEMA_FILE="
            f"{settings.schema_file!r} maps the app's own schema, which dashcache only reads "
            "(unset it to use the demo schema)"
        )
