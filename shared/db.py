"""Database engine and sessions, built from settings."""

from __future__ import annotations

import math

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

from dashcache.models import Base


def make_engine(
    database_url: str, timeout_seconds: float | None = None, **kwargs: object
) -> Engine:
    """An engine for `database_url`; SQLite gets foreign keys and a busy timeout.

    A plain `postgresql://` URL uses psycopg2, the driver dashcache ships with (SQLAlchemy 2.1
    would otherwise pick psycopg 3). With `timeout_seconds` (readers), no step waits longer than
    that: connecting, each statement (PostgreSQL `statement_timeout`), a free pooled connection,
    a locked SQLite file.
    """
    url = make_url(database_url)
    if url.drivername == "sqlite":
        busy = 30 if timeout_seconds is None else timeout_seconds
        engine = create_engine(url, connect_args={"timeout": busy}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg2")
    if timeout_seconds is not None:
        kwargs["pool_timeout"] = timeout_seconds
        kwargs["connect_args"] = {
            # libpq counts whole seconds, at least 2.
            "connect_timeout": max(2, math.ceil(timeout_seconds)),
            "options": f"-c statement_timeout={int(timeout_seconds * 1000)}",
        }
    return create_engine(url, pool_pre_ping=True, **kwargs)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that do not expire objects on commit (dashcache only reads)."""
    return sessionmaker(engine, expire_on_commit=False)


def init_db(engine: Engine) -> None:
    """Create the tables and indexes that are missing; safe to run any number of times."""
    Base.metadata.create_all(engine)


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()
