"""Is the database ready for the WAL source? Each missing piece named with its fix.

`dashcache cdc check` prints the problems and exits 2; `dashcache cdc run` refuses to start with
the same message (`CdcNotReady`). The facts are read in one place (`read_facts`); what is wrong
with them is pure (`problems`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text

from dashcache.errors import CdcNotReady


@dataclass(frozen=True, slots=True)
class Facts:
    """What the checks read from the server."""

    wal_level: str
    user: str
    can_replicate: bool
    max_slots: int
    slots_used: int
    slot_exists: bool
    max_senders: int
    senders_used: int
    emails_table: str
    """The mapped emails table as SQL spells it (quoted where needed)."""
    emails_identity: str | None
    """pg_class.relreplident of the emails table: 'f' is FULL; None when it is not found."""


def read_facts(conn: Connection, slot: str, emails_table: str) -> Facts:
    """Read the facts `problems` judges (a few catalog queries)."""
    row = conn.execute(
        text(
            "SELECT current_setting('wal_level'), current_user,"
            " (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user),"
            " current_setting('max_replication_slots')::int,"
            " (SELECT count(*) FROM pg_replication_slots),"
            " EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = :slot),"
            " current_setting('max_wal_senders')::int,"
            " (SELECT count(*) FROM pg_stat_replication),"
            " (SELECT relreplident::text FROM pg_class WHERE oid = to_regclass(:emails))"
        ),
        {"slot": slot, "emails": emails_table},
    ).one()
    return Facts(
        wal_level=row[0],
        user=row[1],
        can_replicate=bool(row[2]),
        max_slots=row[3],
        slots_used=row[4],
        slot_exists=bool(row[5]),
        max_senders=row[6],
        senders_used=row[7],
        emails_table=emails_table,
        emails_identity=row[8],
    )


def problems(facts: Facts) -> list[str]:
    """One line per missing piece, each with its fix; empty when the source can run."""
    found = []
    if facts.wal_level != "logical":
        found.append(
            f"wal_level is {facts.wal_level}, logical decoding needs logical; fix: "
            "ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL"
        )
    if not facts.can_replicate:
        found.append(
            f"role {facts.user} lacks the REPLICATION privilege; fix: "
            f'ALTER ROLE "{facts.user}" REPLICATION;'
        )
    if not facts.slot_exists and facts.slots_used >= facts.max_slots:
        found.append(
            f"no free replication slot ({facts.slots_used} of max_replication_slots = "
            f"{facts.max_slots} used); fix: drop an unused slot "
            "(SELECT pg_drop_replication_slot('name');) or raise max_replication_slots "
            "and restart PostgreSQL"
        )
    if facts.senders_used >= facts.max_senders:
        found.append(
            f"no free WAL sender ({facts.senders_used} of max_wal_senders = "
            f"{facts.max_senders} used); fix: raise max_wal_senders and restart PostgreSQL"
        )
    if facts.emails_identity is None:
        found.append(f"table {facts.emails_table} not found; fix: check DASHCACHE_SCHEMA_FILE")
    elif facts.emails_identity != "f":
        found.append(
            f"table {facts.emails_table} does not log the before-image of its rows that a "
            f"delta needs; fix: ALTER TABLE {facts.emails_table} REPLICA IDENTITY FULL;"
        )
    return found


def check_ready(facts: Facts) -> None:
    """Raise `CdcNotReady` listing every problem, if any."""
    found = problems(facts)
    if found:
        raise CdcNotReady("the database is not ready for the WAL source:\n" + "\n".join(found))
