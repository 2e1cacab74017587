"""The readers' database engine: short timeouts, and the schema mapping checked at start-up."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from dashcache.config import Settings
from dashcache.errors import DashboardUnavailable
from dashcache.schema.check import engine_for
from dashcache.schema.tables import tables_of


def reader_engine(settings: Settings) -> Engine:
    """An engine with the readers' timeouts, its schema mapping checked against the database.

    A mapping that does not fit raises `SchemaError`; a database that cannot be asked,
    `DashboardUnavailable`.
    """
    try:
        return engine_for(settings, settings.db_timeout_seconds)
    except SQLAlchemyError as error:
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DashboardUnavailable(
            f"cannot check the schema mapping, the database failed: {detail}"
        ) from error


def is_single_tenant(engine: Engine) -> bool:
    """Whether the engine's tables have no account column (the all-accounts scope only)."""
    return tables_of(engine).account is None
