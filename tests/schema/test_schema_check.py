"""Validating a schema mapping: its shape (pure), then against the live database, at start-up.

Every error names the mapping key and what is wrong; worker, beat and CLI stop on one at start-up,
a reader at its first database computation.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, text

from dashcache.cli import main
from dashcache.cli.support import EXIT_USAGE
from dashcache.config import Settings
from dashcache.errors import ConfigError, SchemaError
from dashcache.reader import DashboardReader
from dashcache.schema.check import check_schema
from dashcache.schema.mapping import (
    DEMO_MAPPING,
    describe,
    load_mapping,
    parse_mapping,
    parse_table,
)
from dashcache.schema.tables import created_index_ddl, index_ddl
from tests.mapped_schemas import HOSTILE, app_schema
from tests.processes import Process, celery_command, celery_env

GOOD = """
[emails]
table = "messages"
id = "id"
account = "owner_id"
category = "label_id"
created_at = "received_at"
unread = "is_unread"
auto_labeled = { column = "auto_tagged", when = "false" }

[categories]
table = "labels"
id = "id"
name = "title"
"""


def write(tmp_path: Path, body: str) -> str:
    path = tmp_path / "schema.toml"
    path.write_text(body, encoding="utf-8")
    return str(path)


@pytest.fixture
def messages(pg: Engine) -> Iterator[Engine]:
    """Tables `messages` and `labels` in the public schema, dropped afterwards."""
    with pg.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS messages, labels"))
        conn.execute(text("CREATE TABLE labels (id integer PRIMARY KEY, title text NOT NULL)"))
        conn.execute(
            text(
                "CREATE TABLE messages (id bigint PRIMARY KEY, owner_id bigint NOT NULL, "
                "label_id integer, received_at timestamptz NOT NULL, is_unread boolean, "
                "auto_tagged boolean, naive timestamp, flag_int integer, subject text)"
            )
        )
    yield pg
    with pg.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS messages, labels"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("[categories]", "[categories]\ncolour = 1"), "categories.colour: unknown key"),
        (('id = "id"\naccount', 'id = "id"\nowner = "x"\naccount'), "emails.owner: unknown key"),
        (("[emails]", "[mails]\nx = 1\n[emails]"), "mails: unknown key"),
        (('created_at = "received_at"\n', ""), "emails.created_at: missing (required)"),
        (
            ('when = "false"', 'when = "not null"'),
            'emails.auto_labeled.when: must be one of "false" | "null" | "not_null" (or map a '
            "boolean column by its name alone, set when true), got 'not null'",
        ),
        (
            ('when = "false" }', 'when = "false", colum = "x" }'),
            "emails.auto_labeled.colum: unknown",
        ),
        (('{ column = "auto_tagged", ', "{ "), "emails.auto_labeled.column: missing"),
        (('unread = "is_unread"', "unread = 1"), "emails.unread: must be a column name or"),
        (('id = "id"\naccount', "id = 7\naccount"), "emails.id: must be a non-empty string"),
        (('table = "labels"', 'table = "a.b.c"'), "categories.table: 'a.b.c' must be a table"),
        (('table = "labels"', 'table = "\\"open"'), "categories.table: '\"open' has an unclosed"),
        (('table = "messages"', 'table = "mail."'), "emails.table: 'mail.' has an empty name"),
    ],
)
def test_malformed_mapping_names_the_key(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    """Unknown and missing keys and malformed values stop the settings naming the key."""
    assert change[0] in GOOD
    path = write(tmp_path, GOOD.replace(*change, 1))
    with pytest.raises(SchemaError) as raised:
        Settings.from_env({"DASHCACHE_SCHEMA_FILE": path})
    assert str(raised.value).startswith(message)
    assert isinstance(raised.value, ConfigError)


def test_unreadable_or_invalid_file(tmp_path: Path) -> None:
    """A missing file and invalid TOML name DASHCACHE_SCHEMA_FILE."""
    with pytest.raises(SchemaError, match=r"DASHCACHE_SCHEMA_FILE=.*cannot read"):
        load_mapping(str(tmp_path / "nope.toml"))
    with pytest.raises(SchemaError, match=r"DASHCACHE_SCHEMA_FILE=.*not valid TOML"):
        load_mapping(write(tmp_path, "[emails\n"))


def test_table_names_parse_and_round_trip(tmp_path: Path) -> None:
    """Qualified, quoted and unicode table names parse; `describe` prints a file that reloads."""
    assert parse_table("mail.messages").schema == "mail"
    quoted = parse_table('"my.schema"."a ""b"" ü"')
    assert (quoted.schema, quoted.name) == ("my.schema", 'a "b" ü')
    mapping = load_mapping(write(tmp_path, HOSTILE.toml()))
    again = load_mapping(write(tmp_path, describe(mapping)))
    assert replace(again, source=None) == replace(mapping, source=None)
    assert load_mapping(None) is DEMO_MAPPING


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ('unread = "is_unread"', 'unread = { column = "read_at", when = "null" }'),
            'emails.unread: column "read_at" not found in table "messages"',
        ),
        (('table = "messages"', 'table = "mail.messages"'), 'emails.table: table "mail.messages"'),
        (('table = "labels"', 'table = "tags"'), 'categories.table: table "tags" not found'),
        (('name = "title"', 'name = "id"'), 'categories.name: column "id" of table "labels" is'),
        (('id = "id"\naccount', 'id = "subject"\naccount'), 'emails.id: column "subject"'),
        (('category = "label_id"', 'category = "subject"'), "emails.category: column"),
        (('created_at = "received_at"', 'created_at = "naive"'), "emails.created_at: column"),
        (
            ('unread = "is_unread"', 'unread = "flag_int"'),
            'emails.unread: column "flag_int" of table "messages" is INTEGER; a boolean column',
        ),
        (('column = "auto_tagged"', 'column = "flag_int"'), "emails.auto_labeled: column"),
    ],
)
def test_mapping_that_does_not_fit_names_the_key(
    messages: Engine, tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    """A missing table or column, or a column of a type that cannot be counted, is named."""
    mapping = parse_mapping(tomllib.loads(GOOD.replace(*change, 1)), "schema.toml")
    with pytest.raises(SchemaError) as raised:
        check_schema(messages, mapping)
    lines = str(raised.value).splitlines()
    assert lines[0] == "schema mapping schema.toml does not fit the database:"
    assert any(line.startswith(message) for line in lines[1:]), lines


def test_every_problem_is_listed_and_when_null_takes_any_type(messages: Engine) -> None:
    """All mismatches come in one error; `when = "null"` accepts a column of any type."""
    body = GOOD.replace('"is_unread"', '{ column = "naive", when = "null" }')
    body = body.replace('"label_id"', '"nope"').replace('name = "title"', 'name = "gone"')
    mapping = parse_mapping(tomllib.loads(body), "schema.toml")
    with pytest.raises(SchemaError) as raised:
        check_schema(messages, mapping)
    assert str(raised.value).splitlines()[1:] == [
        'emails.category: column "nope" not found in table "messages"',
        'categories.name: column "gone" not found in table "labels"',
    ]
    check_schema(messages, parse_mapping(tomllib.loads(GOOD), "schema.toml"))


def run_cli(settings: Settings, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env=settings.to_env())
    return result.exit_code, result.stdout, result.stderr


def test_start_up_stops_reader_and_cli(
    settings: Settings, messages: Engine, tmp_path: Path
) -> None:
    """A mapping that does not fit stops every database command of the CLI at start-up, and a
    reader at its first database computation (it starts without the database)."""
    bad = replace(settings, schema_file=write(tmp_path, GOOD.replace("received_at", "read_at")))
    reader = DashboardReader.from_settings(bad)
    try:
        for _ in range(2):  # not remembered as fine: checked again, refused again
            with pytest.raises(SchemaError, match=r'emails\.created_at: column "read_at" not'):
                reader.get_aggregates()
    finally:
        reader.close()
    for command in (["warm"], ["verify"], ["get", "aggregates"], ["schema", "check"]):
        code, _, err = run_cli(bad, *command)
        assert code == EXIT_USAGE, command
        assert 'emails.created_at: column "read_at" not found in table "messages"' in err


def test_db_init_and_seed_refuse_a_mapped_schema(settings: Settings, tmp_path: Path) -> None:
    """dashcache never creates or fills tables of a mapped schema."""
    mapped = replace(settings, schema_file=write(tmp_path, GOOD))
    for command in (["db", "init"], ["seed", "--emails", "5"]):
        code, _, err = run_cli(mapped, *command)
        assert code == EXIT_USAGE
        assert "DASHCACHE_SCHEMA_FILE" in err
        assert "only reads" in err


def test_schema_check_prints_mapping_and_an_index_that_builds(
    settings: Settings, pg: Engine, tmp_path: Path
) -> None:
    """`schema check` prints the resolved mapping and index DDL that runs on hostile names."""
    with app_schema(pg, HOSTILE, tmp_path, ["Work"]) as app:
        code, out, err = run_cli(replace(settings, schema_file=app.mapping_file), "schema", "check")
        assert code == 0, err
        assert describe(load_mapping(app.mapping_file)) in out
        ddl, created = (line for line in out.splitlines() if line.startswith("CREATE INDEX"))
        assert ddl == index_ddl(load_mapping(app.mapping_file), pg.dialect)
        assert created == created_index_ddl(load_mapping(app.mapping_file), pg.dialect)
        with pg.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(ddl))
            conn.execute(text(created))
            found = conn.execute(
                text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_dashcache_counts'")
            ).scalar_one()
            by_time = conn.execute(
                text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_dashcache_created'")
            ).scalar_one()
        assert re.search(r'INCLUDE \("read at", "auto tagged ☑", "réçu à"\)', found)
        assert '("réçu à")' in by_time
        assert out.rstrip().endswith("ok: the mapping fits the database")


def test_demo_schema_check_on_sqlite(tmp_path: Path, redis_url: str, key_prefix: str) -> None:
    """Without a mapping, SQLite (what `make run` uses) still sets up, warms and checks."""
    sqlite = Settings(
        database_url=f"sqlite:///{tmp_path}/demo.db", redis_url=redis_url, key_prefix=key_prefix
    )
    assert run_cli(sqlite, "db", "init")[0] == 0
    assert run_cli(sqlite, "seed", "--emails", "50", "--accounts", "2")[0] == 0
    code, out, _ = run_cli(sqlite, "schema", "check")
    assert code == 0
    assert "account_id, category_id, is_unread, is_auto_labeled, created_at" in out
    assert run_cli(sqlite, "warm")[0] == 0
    code, out, _ = run_cli(sqlite, "verify")
    assert (code, out.strip()) == (0, "checked 6 values: 0 differ, 0 missing")


@pytest.mark.parametrize("role", ["worker", "beat"])
def test_worker_and_beat_stop_on_a_mapping_that_does_not_fit(
    settings: Settings, messages: Engine, tmp_path: Path, role: str
) -> None:
    """Worker and beat exit at start-up, logging the problem with its key."""
    bad = replace(settings, schema_file=write(tmp_path, GOOD.replace('"title"', '"heading"')))
    args = ["worker", "--pool", "solo"] if role == "worker" else ["beat"]
    process = Process(celery_command(*args, "--loglevel", "INFO"), celery_env(bad))
    try:
        assert process.popen.wait(timeout=60) != 0
    finally:
        process.stop()
    output = "".join(process.lines)
    assert "schema.invalid" in output
    assert 'categories.name: column \\"heading\\" not found in table \\"labels\\"' in output
