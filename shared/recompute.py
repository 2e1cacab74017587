"""Recompute dashboard values from the database and write them through the fence.

Every path that fills the cache (the schedule, events, a reader's fallback) goes through here,
so they all take a ticket before reading and can never overwrite a newer value.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from dashcache import clock
from dashcache.crossings import crossings_by_scope, scope_crossings
from dashcache.keys import Kind, Scope, scope_token
from dashcache.maintained import state_json
from dashcache.reads import ReadMarks
from dashcache.schema.tables import tables_of
from dashcache.snapshots import Snapshot, current_snapshot
from dashcache.stats import ScopeStats, compute_accounts, compute_scope, stream_every_scope
from dashcache.store import Drift, Envelope, RedisStore, Write, Written
from dashcache.windows import Crossings, minute_of, moves

ALL_KINDS = (Kind.AGGREGATES, Kind.BREAKDOWN)


@dataclass(frozen=True, slots=True)
class RecomputeResult:
    """What one recompute produced and how much of it the fence let through.

    `stats` holds every scope computed, except after an every-scope pass: that one writes its
    batches as they come and keeps none (`scopes` still counts them). `snapshot` is the
    PostgreSQL snapshot it read (None on SQLite: its values are not delta-maintained); `drift`
    the stored values its writes found wrong.
    """

    generation: int
    computed_at: datetime
    stats: dict[Scope, ScopeStats]
    written: int
    fenced: int
    scopes: int
    snapshot: Snapshot | None = None
    drift: tuple[Drift, ...] = ()
    idle_dropped: int = 0

    @property
    def outcome(self) -> Literal["written", "fenced"]:
        """`fenced` when the fence rejected any of its values (a newer computation won)."""
        return "written" if self.fenced == 0 else "fenced"

    def envelope(self, kind: Kind, account_id: Scope) -> Envelope:
        """The envelope this recompute produced for one key."""
        return Envelope(to_data(self.stats[account_id], kind), self.computed_at, self.generation)

    def write(self, kind: Kind, account_id: Scope) -> Write:
        """The fenced write of one key, with its delta state when read in a snapshot."""
        stats = self.stats[account_id]
        state = None
        if self.snapshot is not None:
            state = state_json(kind, stats, self.generation, self.computed_at, self.snapshot)
        if kind is Kind.AGGREGATES:
            windows = None
            if stats.crossings is not None:
                windows = moves(minute_of(self.computed_at), stats.crossings)
            envelope = Envelope(stats.aggregates, self.computed_at, self.generation, windows)
        else:
            # The breakdown's (name, count) tuples as they are: they serialize as pairs.
            envelope = Envelope(stats.breakdown, self.computed_at, self.generation)
        return Write(kind, account_id, envelope, state)

    def writes(self, kinds: tuple[Kind, ...] = ALL_KINDS) -> list[Write]:
        """The fenced writes of the given kinds of every scope computed."""
        return [self.write(kind, scope) for scope in self.stats for kind in kinds]

    def with_written(self, done: Written) -> RecomputeResult:
        """This result counted: per write, whether the fence let it through, and the drift."""
        flags = done.flags
        return replace(
            self, written=sum(flags), fenced=len(flags) - sum(flags), drift=tuple(done.drift)
        )


def to_data(stats: ScopeStats, kind: Kind) -> object:
    """The JSON data stored for one kind: the aggregates dict, or [name, count] pairs."""
    if kind is Kind.AGGREGATES:
        return stats.aggregates
    return [list(pair) for pair in stats.breakdown]


@contextmanager
def snapshot(engine: Engine) -> Iterator[Session]:
    """A read-only session whose statements all see one snapshot of the database."""
    options = {"isolation_level": "REPEATABLE READ"} if engine.dialect.name == "postgresql" else {}
    with engine.connect().execution_options(**options) as conn, Session(bind=conn) as session:
        yield session
        session.rollback()


def recompute_scope(
    engine: Engine,
    store: RedisStore,
    account_id: Scope,
    max_breakdown: int,
    kinds: tuple[Kind, ...] = ALL_KINDS,
    generation: int | None = None,
) -> RecomputeResult:
    """Recompute one scope's values of the given kinds and write them through the fence; with
    the `generation` of a ticket taken before (a pass's shard), else a ticket of its own."""
    generation = store.take_ticket() if generation is None else generation
    return write_result(
        store, compute_unwritten(engine, account_id, max_breakdown, generation), kinds
    )


def recompute_every_scope(
    engine: Engine,
    store: RedisStore,
    max_breakdown: int,
    kinds: tuple[Kind, ...] = ALL_KINDS,
    accounts: range | None = None,
    generation: int | None = None,
    reads: ReadMarks | None = None,
) -> RecomputeResult:
    """Recompute every scope in one grouped pass, writing each batch of accounts as it is folded
    (memory stays bounded) and the all-accounts scope last; scopes warmed before but now empty
    get zeros. With `accounts` (a shard of the scheduled pass), only the account ids in that
    range, without the all-accounts scope, and `generation` the ticket its pass took before
    sending it (every read of the pass happens after it, as the fence requires). With `reads`,
    accounts nobody read for the idle period are left out (and counted), see dashcache.reads."""
    generation = store.take_ticket() if generation is None else generation
    now = clock.now()
    known = store.warmed_accounts() if accounts is None else warmed_among(store, accounts)
    written = fenced = scopes = idle = 0
    drift: list[Drift] = []
    with snapshot(engine) as session:
        seen = current_snapshot(session)
        crossings = None if seen is None else every_crossings(session, now, accounts)
        batches = stream_every_scope(session, now, max_breakdown, include=known, accounts=accounts)
        for folded in batches:
            batch, dropped = (folded, 0) if reads is None else reads.keep_read(folded, now)
            batch = with_crossings(batch, crossings)
            idle += dropped
            computed = RecomputeResult(generation, now, batch, 0, 0, len(batch), seen)
            part = write_result(store, computed, kinds)
            written += part.written
            fenced += part.fenced
            scopes += part.scopes
            drift += part.drift
    return RecomputeResult(
        generation, now, {}, written, fenced, scopes, seen, tuple(drift), idle_dropped=idle
    )


def warmed_among(store: RedisStore, accounts: range) -> list[int]:
    """The account ids of a shard's range warmed before: one SMISMEMBER of the range's ids, so a
    shard's cost follows its own size, not the number of warmed scopes."""
    if not accounts:
        return []
    tokens = [scope_token(account_id) for account_id in accounts]
    flags = store.client.smismember(store.keys.scopes, tokens)
    return [account_id for account_id, flag in zip(accounts, flags, strict=True) if flag]


def recompute_accounts(
    engine: Engine,
    store: RedisStore,
    kinds_by_account: Mapping[int, tuple[Kind, ...]],
    max_breakdown: int,
) -> RecomputeResult:
    """Recompute many accounts in one grouped pass; write only each account's given kinds."""
    generation = store.take_ticket()
    now = clock.now()
    with snapshot(engine) as session:
        seen = current_snapshot(session)
        stats = compute_accounts(session, kinds_by_account, now, max_breakdown)
        if seen is not None:
            tables = tables_of(session)
            where = [tables.accounts_filter(sorted(kinds_by_account))]
            stats = with_crossings(stats, crossings_by_scope(session, minute_of(now), where))
    result = RecomputeResult(generation, now, stats, 0, 0, len(stats), seen)
    writes = [
        result.write(kind, account_id)
        for account_id, kinds in kinds_by_account.items()
        for kind in kinds
    ]
    return result.with_written(store.write_checked(writes))


def compute_unwritten(
    engine: Engine, account_id: Scope, max_breakdown: int, generation: int
) -> RecomputeResult:
    """One scope computed now, not written yet; take `generation` as a ticket before calling.

    Readers call this and `write_result` apart, so a value computed while Redis failed is still
    returned (with generation 0 when no ticket could be taken).
    """
    now = clock.now()
    with snapshot(engine) as session:
        seen = current_snapshot(session)
        stats = {account_id: compute_scope(session, account_id, now, max_breakdown)}
        if seen is not None:
            crossings = {account_id: scope_crossings(session, minute_of(now), account_id)}
            stats = with_crossings(stats, crossings)
    return RecomputeResult(generation, now, stats, written=0, fenced=0, scopes=1, snapshot=seen)


def write_result(
    store: RedisStore, result: RecomputeResult, kinds: tuple[Kind, ...] = ALL_KINDS
) -> RecomputeResult:
    """Write the given kinds of every scope of `result` through the fence; count the outcome."""
    return result.with_written(store.write_checked(result.writes(kinds)))


def every_crossings(
    session: Session, now: datetime, accounts: range | None
) -> dict[Scope, Crossings]:
    """The crossings of every scope of a pass (or of a shard's accounts), in its snapshot."""
    tables = tables_of(session)
    where = [] if accounts is None else tables.range_filter(accounts.start, accounts.stop)
    return crossings_by_scope(session, minute_of(now), where, every=accounts is None)


def with_crossings(
    stats: dict[Scope, ScopeStats], crossings: Mapping[Scope, Crossings] | None
) -> dict[Scope, ScopeStats]:
    """`stats` with each scope's crossings (none found: no email crosses in the horizon)."""
    if crossings is None:
        return stats
    return {
        scope: replace(found, crossings=crossings.get(scope, Crossings()))
        for scope, found in stats.items()
    }
