"""PostgreSQL snapshots: which transactions a computation saw, so deltas are never counted twice.

A recompute reads in one REPEATABLE READ transaction and stores its snapshot with the value
(`pg_current_snapshot()`: xmin, xmax and the in-progress list). A transaction is visible in it
iff its id is below xmin, or below xmax and not in progress. Ids are 64-bit
(`pg_current_xact_id()`); Lua sees them as decimal strings, never as doubles.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from dashcache.errors import InvalidArgument


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One `pg_current_snapshot()`: xmin, xmax and the ids in progress."""

    xmin: int
    xmax: int
    xip: frozenset[int] = frozenset()

    def sees(self, txid: int) -> bool:
        """Whether the transaction `txid` (committed) is visible in this snapshot."""
        return txid < self.xmin or (txid < self.xmax and txid not in self.xip)

    def wire(self) -> list[object]:
        """The form stored in a value's state: [xmin, xmax, [xip...]], all decimal strings."""
        return [str(self.xmin), str(self.xmax), [str(x) for x in sorted(self.xip)]]

    @classmethod
    def parse(cls, text_form: str) -> Snapshot:
        """Parse PostgreSQL's text form `xmin:xmax:xip1,xip2`."""
        try:
            xmin, xmax, xip = text_form.split(":")
            return cls(int(xmin), int(xmax), frozenset(int(x) for x in xip.split(",") if x))
        except ValueError:
            raise InvalidArgument(f"not a PostgreSQL snapshot: {text_form!r}") from None


def current_snapshot(session: Session) -> Snapshot | None:
    """The snapshot the session's transaction reads from; None off PostgreSQL (SQLite has none).

    Run it first in a REPEATABLE READ transaction: every later statement shares the snapshot.
    """
    if session.get_bind().dialect.name != "postgresql":
        return None
    found = session.execute(text("SELECT pg_current_snapshot()::text")).scalar_one()
    return Snapshot.parse(found)


def current_txid(executor: Session | Connection) -> int | None:
    """The id of the transaction of a session or connection (assigning one if needed); None off
    PostgreSQL."""
    bind = executor.get_bind() if isinstance(executor, Session) else executor
    if bind.dialect.name != "postgresql":
        return None
    return int(executor.execute(text("SELECT pg_current_xact_id()::text")).scalar_one())
