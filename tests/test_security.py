"""Security: Redis AUTH and TLS through the URLs, no password in any log or error, and a
read-only database role that is enough for the worker and the readers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine, insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError

from dashcache.bench.launcher import celery_command, celery_env
from dashcache.config import Settings
from dashcache.db import make_engine
from dashcache.keys import KeySchema, Kind
from dashcache.models import Category
from dashcache.observe.verify import verify
from dashcache.reader import DashboardReader
from dashcache.redis_server import RedisServer, free_port
from tests.cli.test_cli import run
from tests.conftest import PG_ADMIN_URL
from tests.helpers import NOW, Row, add_categories, add_emails
from tests.processes import Process, beat_process, worker_process
from tests.tls import make_certificates
from tests.worker.test_worker import wait_for_value

SECRET = "s3cret-" + uuid.uuid4().hex[:8]
READ_ONLY_GRANTS = [
    'GRANT CONNECT ON DATABASE "{database}" TO {role}',
    "GRANT USAGE ON SCHEMA public TO {role}",
    "GRANT SELECT ON emails, categories TO {role}",
]
"""What the README documents for the worker's and the readers' database role."""


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[str]:
    """URL of a redis-server of this test that speaks only TLS and requires a password."""
    certs = make_certificates(tmp_path)
    port = free_port()
    url = f"rediss://:{SECRET}@127.0.0.1:{port}/0?ssl_cert_reqs=required&ssl_ca_certs={certs.ca}"
    tls = ["--port", "0", "--tls-port", str(port), "--tls-auth-clients", "no"]
    files = ["--tls-cert-file", str(certs.cert), "--tls-key-file", str(certs.key)]
    server = RedisServer(port, *tls, *files, "--tls-ca-cert-file", str(certs.ca), url=url)
    server.extra += ("--requirepass", SECRET)
    server.start()
    yield url
    server.stop()


def test_worker_beat_and_reader_over_tls_with_auth_never_log_the_password(
    settings: Settings, pg: Engine, tls_redis: str, tmp_path: Path
) -> None:
    """With rediss:// and a password as broker and cache, keys warm and no log shows the secret."""
    secure = replace(
        settings, redis_url=tls_redis, broker_url=tls_redis, refresh_seconds=1, ttl_seconds=60
    )
    add_categories(pg, ["work"])
    add_emails(pg, [Row(1, 1, True, False, NOW)])
    client = redis.Redis.from_url(tls_redis)
    reader = DashboardReader.from_settings(secure)
    try:
        with worker_process(secure) as worker, beat_process(secure, tmp_path / "b") as beat:
            key = KeySchema(secure.key_prefix).value(Kind.BREAKDOWN, 1)
            wait_for_value(client, key, [["work", 1]])
            beat.wait_for("Sending due task")
            value = reader.get_category_breakdown(account_id=1)
            lines = worker.lines + beat.lines
    finally:
        reader.close()
        client.close()
    assert (value.source, value.data) == ("cache", {"work": 1})
    assert not [line for line in lines if SECRET in line]


def test_wrong_passwords_are_not_in_logs_or_errors(
    settings: Settings, pg: Engine, tls_redis: str, tmp_path: Path
) -> None:
    """A rejected Redis password and an unreachable database leave no secret in output."""
    wrong = tls_redis.replace(SECRET, "wrong-" + SECRET)
    refused = replace(settings, redis_url=wrong, broker_url=wrong, refresh_seconds=1)
    worker = Process(celery_command("worker", "--pool", "solo"), celery_env(refused))
    beat = Process(celery_command("beat", "--schedule", str(tmp_path / "b")), celery_env(refused))
    try:
        worker.wait_for("invalid username-password pair")
        beat.wait_for("beat.redis_unavailable")
    finally:
        worker.stop()
        beat.stop()
    db_url = f"postgresql://dashcache:{SECRET}@127.0.0.1:{free_port()}/x"
    code, out, err = run(refused, "get", "aggregates", DASHCACHE_ON_REDIS_DOWN="error")
    db_code, db_out, db_err = run(settings, "warm", DATABASE_URL=db_url)
    outputs = [*worker.lines, *beat.lines, out, err, db_out, db_err]
    assert (code, db_code) == (3, 3)
    assert not [text_ for text_ in outputs if SECRET in text_]


@pytest.fixture
def read_only_url(settings: Settings) -> Iterator[str]:
    """URL of a PostgreSQL role of this test with only the documented read-only grants."""
    role = f"dashcache_ro_{uuid.uuid4().hex[:8]}"
    url = make_url(settings.database_url)
    admin = make_engine(PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{url.database}")
    with admin.begin() as conn:
        conn.execute(text(f"CREATE ROLE {role} LOGIN PASSWORD '{SECRET}'"))
        for grant in READ_ONLY_GRANTS:
            conn.execute(text(grant.format(database=url.database, role=role)))
    yield url.set(username=role, password=SECRET).render_as_string(hide_password=False)
    with admin.begin() as conn:
        conn.execute(text(f"DROP OWNED BY {role}"))
        conn.execute(text(f"DROP ROLE {role}"))
    admin.dispose()


def test_read_only_role_is_enough_to_warm_read_and_verify(
    settings: Settings, pg: Engine, read_only_url: str
) -> None:
    """SELECT on emails and categories lets every scope warm, readers fall back, verify run."""
    add_categories(pg, ["work"])
    add_emails(pg, [Row(1, 1, True, False, NOW), Row(2, 1, False, False, NOW)])
    read_only = replace(settings, database_url=read_only_url)
    code, out, _ = run(read_only, "warm")
    reader = DashboardReader.from_settings(read_only)
    try:
        fallback = reader.get_aggregates(account_id=3)
        report = verify(reader.engine, reader.store, read_only.max_breakdown)
        with pytest.raises(ProgrammingError, match="permission denied"), reader.engine.begin() as c:
            c.execute(insert(Category).values(name="sneaky"))
    finally:
        reader.close()
    assert code == 0
    assert '"scopes": 3' in out
    assert (fallback.source, fallback.data["total_emails"]) == ("fallback", 0)
    assert (report.ok, report.checked) == (True, 8)
