"""The cause a failed run logs: a database outage is a database error whatever class it has."""

from __future__ import annotations

import psycopg2
import pytest
from redis import ConnectionError as RedisConnectionError
from sqlalchemy import create_engine, text
from sqlalchemy.exc import InterfaceError, OperationalError, TimeoutError

from dashcache.errors import DashboardUnavailable, InvalidEvent
from dashcache.failures import failure_cause
from dashcache.redis_server import free_port


def test_a_refused_connect_is_a_database_failure() -> None:
    """A real refused connection, as SQLAlchemy raises it, is caused by the database."""
    engine = create_engine(f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/x")
    with pytest.raises(OperationalError) as raised:
        engine.connect().execute(text("SELECT 1"))
    engine.dispose()
    assert failure_cause(raised.value) == "database"


@pytest.mark.parametrize(
    "error",
    [
        InterfaceError("SELECT 1", {}, psycopg2.InterfaceError("connection already closed")),
        TimeoutError("QueuePool limit of size 5 overflow 0 reached"),
        psycopg2.DatabaseError("error with status PGRES_TUPLES_OK and no message from the libpq"),
    ],
)
def test_every_class_a_driver_raises_in_an_outage_is_a_database_failure(
    error: Exception,
) -> None:
    """Whichever class the driver raises when the socket is cut, the cause is the database."""
    assert failure_cause(error) == "database"


def test_causes_are_followed_and_the_rest_is_other() -> None:
    """An error raised from a database or Redis error takes its cause; anything else is other."""
    wrapped = DashboardUnavailable("no")
    wrapped.__cause__ = OperationalError("SELECT 1", {}, Exception("x"))
    assert failure_cause(wrapped) == "database"
    assert failure_cause(RedisConnectionError("gone")) == "redis"
    assert failure_cause(InvalidEvent("bad", "account")) == "other"
    assert failure_cause(KeyError("x")) == "other"
