"""The publication and the replication slot: created when missing, watched, dropped.

The slot holds back every WAL segment from its confirmed position on (`retained_bytes`); past
`max_slot_wal_keep_size` PostgreSQL invalidates it (`wal_status = 'lost'`) and it can stream
nothing more. Statements run on an autocommit connection: a slot cannot be created inside a
transaction that wrote.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text


@dataclass(frozen=True, slots=True)
class SlotState:
    """One row of pg_replication_slots, as the consumer watches it."""

    wal_status: str | None
    confirmed_lsn: str | None
    retained_bytes: int | None
    active_pid: int | None

    @property
    def lost(self) -> bool:
        """PostgreSQL invalidated the slot: it cannot stream any more."""
        return self.wal_status == "lost"


def quote(conn: Connection, name: str) -> str:
    """An identifier as SQL spells it (quoted where needed)."""
    return conn.dialect.identifier_preparer.quote(name)


def ensure_publication(conn: Connection, name: str, tables: tuple[str, ...]) -> bool:
    """Create the publication of `tables` (SQL-spelled) when missing; True when created."""
    found = conn.execute(text("SELECT 1 FROM pg_publication WHERE pubname = :n"), {"n": name})
    if found.first() is not None:
        return False
    conn.execute(
        text(
            f"CREATE PUBLICATION {quote(conn, name)} FOR TABLE {', '.join(tables)}"
            " WITH (publish = 'insert, update, delete, truncate')"
        )
    )
    return True


def ensure_slot(conn: Connection, slot: str) -> bool:
    """Create the pgoutput slot when missing; True when created (nothing before it streams)."""
    if slot_state(conn, slot) is not None:
        return False
    conn.execute(text("SELECT pg_create_logical_replication_slot(:s, 'pgoutput')"), {"s": slot})
    return True


def slot_state(conn: Connection, slot: str) -> SlotState | None:
    """The slot's state, None when it does not exist."""
    row = conn.execute(
        text(
            "SELECT wal_status, confirmed_flush_lsn::text,"
            " pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint, active_pid"
            " FROM pg_replication_slots WHERE slot_name = :s"
        ),
        {"s": slot},
    ).first()
    if row is None:
        return None
    return SlotState(row[0], row[1], row[2], row[3])


def drop_slot(conn: Connection, slot: str) -> bool:
    """Drop the slot (PostgreSQL refuses while a consumer is attached); True when it existed."""
    if slot_state(conn, slot) is None:
        return False
    conn.execute(text("SELECT pg_drop_replication_slot(:s)"), {"s": slot})
    return True


def drop_publication(conn: Connection, name: str) -> None:
    """Drop the publication if it exists."""
    conn.execute(text(f"DROP PUBLICATION IF EXISTS {quote(conn, name)}"))


def next_xid(conn: Connection) -> int:
    """The next 64-bit transaction id: at or after every transaction the slot can stream."""
    return int(conn.execute(text("SELECT pg_snapshot_xmax(pg_current_snapshot())::text")).one()[0])
