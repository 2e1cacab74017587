"""dashcache inside a host whose own packages are named `shared`, `worker` and `bench`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine

from dashcache.bench.launcher import celery_env, worker_args
from dashcache.config import Settings
from dashcache.keys import KeySchema, Kind
from tests.helpers import NOW, Row, add_emails
from tests.processes import Process
from tests.worker.test_worker import wait_for_key

HOST_APP = Path(__file__).with_name("host_app.py")
HOST_PACKAGES = {
    "shared/__init__.py": 'MARK = "host shared"\n',
    "shared/config.py": 'MARK = "host shared.config"\n',
    "worker/__init__.py": 'MARK = "host worker"\n',
    "bench/__init__.py": 'MARK = "host bench"\n',
}


@pytest.fixture
def host(tmp_path: Path) -> Path:
    """A host app's folder: its own `shared`, `worker` and `bench` packages, and its script."""
    for name, body in HOST_PACKAGES.items():
        path = tmp_path / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(body)
    shutil.copy(HOST_APP, tmp_path / "app.py")
    return tmp_path


def host_env(settings: Settings, host: Path) -> dict[str, str]:
    """The settings' environment with the host's folder first on the import path."""
    return {**os.environ, **settings.to_env(), "PYTHONPATH": str(host)}


def test_a_host_keeps_its_own_packages_and_uses_dashcache(
    settings: Settings, pg: Engine, host: Path
) -> None:
    """Both readers read, an event is published and counted, and the host's own `shared`,
    `shared.config`, `worker` and `bench` are the ones it imports."""
    add_emails(pg, [Row(1, None, False, False, NOW)])
    done = subprocess.run(
        [sys.executable, "app.py"],
        cwd=host,
        env=host_env(settings, host),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert all(Path(path).is_relative_to(host) for path in seen["own"]), seen["own"]
    assert seen["own_markers"] == ["host shared", "host shared.config", "host worker", "host bench"]
    assert seen["before"] == [1, "fallback"]
    assert seen["async_total"] == 1
    assert seen["after"] == [2, "cache"]  # the published event's delta, read from Redis


def test_a_worker_started_in_the_hosts_folder_warms_the_values(
    settings: Settings, pg: Engine, redis_client: redis.Redis, host: Path
) -> None:
    """`celery -A dashcache.worker worker`, run where the host's own `worker` package is,
    loads dashcache's Celery app and warms every scope."""
    add_emails(pg, [Row(7, None, True, False, NOW)])
    command = [sys.executable, "-m", "celery", "-A", "dashcache.worker", *worker_args(1)]
    env = {**celery_env(settings), "PYTHONPATH": str(host)}
    process = Process(command, env, cwd=host)
    try:
        process.wait_for("ready")
        envelope = wait_for_key(
            redis_client, KeySchema(settings.key_prefix).value(Kind.AGGREGATES, 7)
        )
    finally:
        process.stop()
    assert envelope["data"]["total_emails"] == 1
