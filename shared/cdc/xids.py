"""32-bit transaction ids (what pgoutput sends) widened to PostgreSQL's 64-bit full ids.

`pg_current_xact_id()` and `pg_current_snapshot()` count `epoch << 32 | xid`; a Begin message
carries only the low 32 bits. Given a full id known to be at or after the transaction and less
than 2**31 after it (a snapshot's xmax, or the next xid read on the replication connection),
exactly one full id fits, on either side of an epoch boundary. Pure.
"""

from __future__ import annotations

from dashcache.errors import XidOutOfRange

XID_SPAN = 1 << 32
"""32-bit xids wrap here, and the epoch goes up by one."""

MAX_DISTANCE = 1 << 31
"""How far after the transaction the reference may be: PostgreSQL's own horizon for xids."""

FIRST_NORMAL_XID = 3
"""0, 1 and 2 are invalid, bootstrap and frozen: never the id of a streamed transaction."""


def widen(xid: int, reference: int) -> int:
    """The full 64-bit id of `xid`, given a full id `reference` in [full, full + 2**31)."""
    if not FIRST_NORMAL_XID <= xid < XID_SPAN:
        raise XidOutOfRange(
            f"xid {xid} is not a normal 32-bit transaction id ({FIRST_NORMAL_XID} .. 2**32-1)"
        )
    if not 0 <= reference < 1 << 64:
        raise XidOutOfRange(f"reference {reference} is not a 64-bit transaction id")
    full = (reference & ~(XID_SPAN - 1)) | xid
    if full > reference:
        full -= XID_SPAN
    if full < 0 or reference - full >= MAX_DISTANCE:
        raise XidOutOfRange(
            f"xid {xid} cannot be widened against reference {reference}: the reference must be "
            f"at or after the transaction and less than 2**31 after it"
        )
    return full
