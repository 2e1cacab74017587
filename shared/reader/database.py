"""The readers' database: an engine with short timeouts, its schema mapping checked when the
database is first needed, not at start-up.

A reader starts without the database and serves what Redis holds. Its first computation (a miss,
a `fresh=True` read, Redis down) checks the mapping against the live database before it runs:
a mapping that does not fit raises `SchemaError` naming the key, as `engine_for` does at a
worker's start-up; a database that cannot be asked raises `DashboardUnavailable`, and the next
computation checks again. Once the mapping fitted it is not checked again.
"""

from __future__ import annotations

import threading

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from dashcache.config import Settings
from dashcache.db import make_engine
from dashcache.errors import DashboardUnavailable, SchemaError
from dashcache.keys import Scope
from dashcache.reader.rules import LOG_INTERVAL_SECONDS
from dashcache.reader.throttle import ThrottledLog
from dashcache.recompute import RecomputeResult, compute_unwritten
from dashcache.schema.check import check_schema
from dashcache.schema.mapping import SchemaMapping, load_mapping
from dashcache.schema.tables import bind_tables, build_tables, tables_of


class ReaderDatabase:
    """One reader's engine and mapping; `compute` checks the mapping first (thread-safe)."""

    def __init__(self, engine: Engine, mapping: SchemaMapping) -> None:
        self.engine = engine
        self.mapping = mapping
        self.single_tenant = mapping.emails.account is None
        """Whether the mapping has no account column (the all-accounts scope only)."""
        self._outages = ThrottledLog(__name__, LOG_INTERVAL_SECONDS)
        self._checked = mapping.is_default  # the demo schema is trusted, as by `engine_for`
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> ReaderDatabase:
        """The engine of `settings` with the readers' timeouts; nothing connects yet. A mapping
        file that cannot be read or parsed raises `SchemaError` here."""
        mapping = load_mapping(settings.schema_file)
        engine = make_engine(settings.database_url, settings.db_timeout_seconds)
        return cls(bind_tables(engine, build_tables(mapping)), mapping)

    @classmethod
    def of(cls, engine: Engine) -> ReaderDatabase:
        """An engine made elsewhere (`engine_for`, say), with the mapping bound to it, trusted."""
        database = cls(engine, tables_of(engine).mapping)
        database._checked = True
        return database

    def compute(self, account_id: Scope, max_breakdown: int, generation: int) -> RecomputeResult:
        """`compute_unwritten` of one scope, the mapping checked first if it has not been yet.

        Raises `SchemaError` (the mapping does not fit), `DashboardUnavailable` (the database
        cannot be asked for the check) or the `SQLAlchemyError` of the computation.
        """
        if not self._checked:
            self._check()
        return compute_unwritten(self.engine, account_id, max_breakdown, generation)

    def _check(self) -> None:
        with self._lock:  # one check at a time; the others find it done
            if self._checked:
                return
            try:
                check_schema(self.engine, self.mapping)
            except SQLAlchemyError as error:
                detail = str(error).splitlines()[0] if str(error) else type(error).__name__
                self._outages.emit("warning", "reader.schema_check_failed", error=detail)
                raise DashboardUnavailable(
                    f"cannot check the schema mapping, the database failed: {detail}"
                ) from error
            except SchemaError as error:
                self._outages.emit("error", "reader.schema_invalid", error=str(error))
                raise
            self._checked = True

    def dispose(self) -> None:
        """Close the engine's connections (it connects again if used afterwards)."""
        self.engine.dispose()
