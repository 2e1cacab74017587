"""dashcache as a library is a good guest: its records go to the host's own logging set-up, it
writes nothing to stdout or stderr itself and leaves the root logger alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine

from dashcache.config import Settings
from tests.helpers import NOW, Row, add_emails

ROOT = Path(__file__).resolve().parent.parent


def run_host(mode: str, settings: Settings) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.logging_host", mode],
        cwd=ROOT,
        env={**os.environ, **settings.to_env()},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


@pytest.fixture
def data(pg: Engine) -> None:
    add_emails(pg, [Row(1, None, True, False, NOW), Row(2, None, True, False, NOW)])


@pytest.mark.usefixtures("data")
def test_host_handler_receives_records_and_stdout_is_the_hosts(settings: Settings) -> None:
    """The host's handler gets reader.fallback and reader.database_failed from both readers'
    module loggers, as readable messages; stdout holds only the host's JSON lines; stderr is
    empty; the host's root logger is as it set it."""
    done = run_host("handler", settings)
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert lines[:2] == [{"host": "started"}, {"host": "read"}]
    assert len(lines) == 3
    assert done.stderr == ""
    report = lines[2]
    assert report["root_untouched"] is True
    seen = {(r["logger"], r["event"], r["level"]) for r in report["records"]}
    assert {
        ("dashcache.reader.sync_reader", "reader.fallback", "INFO"),
        ("dashcache.reader.sync_reader", "reader.database_failed", "WARNING"),
        ("dashcache.reader.async_reader", "reader.fallback", "INFO"),
        ("dashcache.reader.async_reader", "reader.database_failed", "WARNING"),
    } <= seen
    fallback = next(r for r in report["records"] if r["event"] == "reader.fallback")
    assert fallback["message"].startswith("reader.fallback kind=aggregates scope=a1 ")


@pytest.mark.usefixtures("data")
def test_host_without_logging_set_up_gets_no_output(settings: Settings) -> None:
    """A host that configured no logging at all sees nothing from dashcache: not even warnings
    through logging's last-resort handler on stderr."""
    done = run_host("bare", settings)
    assert done.stdout.splitlines() == ['{"host": "started"}', '{"host": "read"}']
    assert done.stderr == ""
