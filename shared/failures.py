"""What a failed run was caused by, as its log line says: the database, Redis, or anything else.

A database outage surfaces as whichever class the driver raises at that moment (a refused
connect is an `OperationalError`, a socket cut mid-query an `OperationalError`, `InterfaceError`
or `DatabaseError`, a pool that cannot hand out a connection a `TimeoutError`): the contract is
the cause, not the class.
"""

from __future__ import annotations

from typing import Literal

import psycopg2
from redis import RedisError
from sqlalchemy.exc import SQLAlchemyError

Cause = Literal["database", "redis", "other"]


def failure_cause(error: BaseException) -> Cause:
    """`database` for any SQLAlchemy or psycopg2 error, `redis` for any redis-py error, either
    also when it is the cause of the error raised; `other` for the rest (a bug, bad data)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, SQLAlchemyError | psycopg2.Error):
            return "database"
        if isinstance(seen, RedisError):
            return "redis"
        seen = seen.__cause__
    return "other"
