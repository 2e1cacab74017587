"""`python -m dashcache.worker` (what `make run` runs): worker and beat on embedded defaults.

With nothing configured it uses a SQLite file seeded with demo data, and starts its own Redis
when none answers on localhost. Configured through the environment, it only runs both processes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from types import FrameType

from sqlalchemy import func, select

from dashcache import clock
from dashcache.config import DEFAULT_REDIS_URL, Settings
from dashcache.db import init_db, make_engine
from dashcache.logging import configure_logging, get_logger
from dashcache.models import Email
from dashcache.seed import SeedPlan, seed_database
from dashcache.worker import embedded_redis

DEMO = SeedPlan(emails=50_000, categories=12, accounts=25, days=30, seed=1)

log = get_logger("dashcache.worker.run")


def main() -> int:
    """Run worker and beat until interrupted; returns the first child's non-zero exit code."""
    settings = Settings.from_env()
    configure_logging(settings)
    embedded = None
    if "REDIS_URL" not in os.environ and not embedded_redis.answers(DEFAULT_REDIS_URL):
        embedded = embedded_redis.start(port=6379)
        log.info("embedded_redis.started", url=DEFAULT_REDIS_URL)
    if "DATABASE_URL" not in os.environ and settings.schema_file is None:
        seed_demo(settings)
    celery = [sys.executable, "-m", "celery", "-A", "dashcache.worker"]
    workers = [
        subprocess.Popen([*celery, "worker", "--loglevel", "INFO", "--without-gossip"]),  # noqa: S603
        subprocess.Popen([*celery, "beat", "--loglevel", "INFO"]),  # noqa: S603
    ]

    def stop(signum: int, _frame: FrameType | None) -> None:
        for child in workers:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    try:
        codes = [child.wait() for child in workers]
    except KeyboardInterrupt:
        codes = [child.wait() for child in workers]
    finally:
        for child in workers:
            if child.poll() is None:
                child.terminate()
                child.wait()
        if embedded is not None:
            embedded.stop()
    return next((code for code in codes if code not in (0, -signal.SIGTERM)), 0)


def seed_demo(settings: Settings) -> None:
    """Create the tables and, if there are no emails yet, add the demo data set."""
    engine = make_engine(settings.database_url)
    init_db(engine)
    with engine.connect() as conn:
        existing = conn.execute(select(func.count()).select_from(Email)).scalar_one()
    if existing == 0:
        inserted = seed_database(engine, DEMO, clock.now())
        log.info("demo.seeded", emails=inserted, database=settings.database_url)
    engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
