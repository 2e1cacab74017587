"""Running one event recompute: claim, recompute through the fence, release; contain failures.

One bad item never holds back the good ones drained with it:

- A dirty-set member that is no account token (it cannot come from a validated event, but the
  set is open to anyone with Redis access) is dead-lettered with the token and never marked
  again (`event.rejected`).
- A grouped run of accounts that fails for a reason other than an unreachable database or
  Redis is run again one account at a time: the good accounts are written, and only those that
  failed are marked dirty again, each at most `MAX_ACCOUNT_FAILURES` times in a row before it
  is dead-lettered and left to the schedule (`recompute.account_failed`, `recompute.gave_up`).
- An unreachable database or Redis fails the whole run: its claimed accounts or targets are
  marked pending again and the task's bounded retries (then the schedule) take over.
- Targets still cooling down (a run of theirs started less than a debounce ago) are sent again
  with the time left, so no two runs of a target start less than a debounce apart.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import Engine
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from dashcache import clock
from dashcache.errors import InvalidEvent
from dashcache.events.coalesce import Claim, Coalescer, Run, is_account_token
from dashcache.events.deadletter import dead_letter
from dashcache.events.targeting import Target
from dashcache.keys import (
    ACCOUNTS_SCOPE,
    ALL_SCOPE,
    EVERY_SCOPE,
    Kind,
    parse_scope_token,
    scope_token,
)
from dashcache.logging import get_logger
from dashcache.metrics import Metrics
from dashcache.recompute import (
    RecomputeResult,
    recompute_accounts,
    recompute_every_scope,
    recompute_scope,
)
from dashcache.store import RedisStore

MAX_ACCOUNT_FAILURES = 3
"""Failed recomputes in a row after which an account's event run is given up (dead-lettered)."""

FAILURES_TTL_SECONDS = 3600
"""How long an account's failure count is remembered after its last failure."""

UNREACHABLE = (
    OperationalError,
    InterfaceError,
    DisconnectionError,
    PoolTimeoutError,
    RedisConnectionError,
    RedisTimeoutError,
)
"""Errors that say the database or Redis cannot be reached: every account would fail alike."""

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class EventRun:
    """What an event run needs besides the run itself."""

    engine: Engine
    store: RedisStore
    coalescer: Coalescer
    metrics: Metrics
    max_breakdown: int
    send: Callable[[list[Run]], None]


def recompute_targets(
    ctx: EventRun, run: Run, token: str, on_claim: Callable[[Claim], None] | None = None
) -> RecomputeResult | None:
    """Claim, recompute through the fence in one pass, release (also on failure).

    `on_claim` sees the claim before the database is read. None when nothing was left to do:
    every target still cooling down (sent again for later), or a run of accounts that finds
    none dirty (an earlier run drained them). Dirty accounts left over by the drain limit get
    one more run. When the run raises (the database or Redis unreachable), its claimed accounts
    (or targets) are marked pending again, so the task's retry claims them.
    """
    claim = ctx.coalescer.claim(run.scope, run.kinds, token)
    if on_claim is not None:
        on_claim(claim)
    try:
        _resend(ctx, run.scope, claim)
        _reject(ctx, claim.rejected)
        if not claim.targets or (run.scope == ACCOUNTS_SCOPE and not claim.accounts):
            return None
        return _recompute(ctx, run.scope, claim)
    except Exception:
        ctx.coalescer.mark(claim.accounts or claim.targets)
        raise
    finally:
        ctx.coalescer.release(claim.targets, token)


def check_run(scope: object, kinds: object) -> Run:
    """The run a task message asks for; `InvalidEvent` if its scope or kinds are not ours."""
    if not isinstance(scope, str) or not (
        scope in (ALL_SCOPE, EVERY_SCOPE, ACCOUNTS_SCOPE) or is_account_token(scope)
    ):
        raise InvalidEvent(f"scope: not an event target: {scope!r}", "scope")
    known = {kind.value for kind in Kind}
    if not isinstance(kinds, list) or not kinds or not all(kind in known for kind in kinds):
        raise InvalidEvent(f"kinds: must be a list of {sorted(known)}, got {kinds!r}", "kinds")
    return Run(scope, tuple(Kind(kind) for kind in dict.fromkeys(kinds)), None)


def _resend(ctx: EventRun, scope: str, claim: Claim) -> None:
    """Send the cooling kinds again after the time left, and the kinds with accounts left."""
    runs = [Run(scope, (kind,), wait) for kind, wait in sorted(claim.cooling.items())]
    if claim.more:
        runs.append(Run(scope, tuple(claim.more), None))
    if runs:
        ctx.send(runs)


def _reject(ctx: EventRun, members: list[Target]) -> None:
    """Dead-letter dirty-set members that name no account; they are not marked again."""
    for member in members:
        error = InvalidEvent(f"dirty: not an account scope token: {member.scope!r}", "dirty")
        payload = {"kind": member.kind.value, "token": member.scope}
        keys = ctx.coalescer.keys
        dead_letter(ctx.coalescer.client, keys, payload, error, token=member.scope)
        ctx.metrics.record_event("dead_lettered")


def _recompute(ctx: EventRun, scope: str, claim: Claim) -> RecomputeResult:
    kinds = tuple(target.kind for target in claim.targets)
    if scope == EVERY_SCOPE:
        return recompute_every_scope(ctx.engine, ctx.store, ctx.max_breakdown, kinds)
    if scope == ALL_SCOPE:
        return recompute_scope(ctx.engine, ctx.store, None, ctx.max_breakdown, kinds)
    by_account: dict[int, tuple[Kind, ...]] = {}
    for target in claim.accounts:
        account_id = parse_scope_token(target.scope)
        if account_id is not None:
            by_account[account_id] = (*by_account.get(account_id, ()), target.kind)
    try:
        return recompute_accounts(ctx.engine, ctx.store, by_account, ctx.max_breakdown)
    except UNREACHABLE:
        raise
    except Exception:
        return _one_by_one(ctx, by_account)


def _one_by_one(ctx: EventRun, by_account: Mapping[int, tuple[Kind, ...]]) -> RecomputeResult:
    """Recompute each account alone; the failed ones are marked again (bounded), not raised."""
    done: list[RecomputeResult] = []
    failed: dict[int, Exception] = {}
    for account_id, kinds in by_account.items():
        try:
            done.append(
                recompute_accounts(ctx.engine, ctx.store, {account_id: kinds}, ctx.max_breakdown)
            )
        except UNREACHABLE:
            raise
        except Exception as error:
            failed[account_id] = error
    _count_failures(ctx, by_account, failed)
    merged = RecomputeResult(0, clock.now(), {}, written=0, fenced=0, scopes=0)
    for part in done:
        merged = replace(
            part,
            stats={**merged.stats, **part.stats},
            written=merged.written + part.written,
            fenced=merged.fenced + part.fenced,
            scopes=merged.scopes + part.scopes,
        )
    return merged


def _count_failures(
    ctx: EventRun, by_account: Mapping[int, tuple[Kind, ...]], failed: Mapping[int, Exception]
) -> None:
    """Forget the failures of accounts that worked; mark failed ones again up to the bound."""
    keys, client = ctx.coalescer.keys, ctx.coalescer.client
    pipe = client.pipeline(transaction=True)
    failing: list[tuple[Kind, int, int]] = []  # kind, account, position of its count's reply
    for account_id, kinds in by_account.items():
        for kind in kinds:
            if account_id in failed:
                failing.append((kind, account_id, len(pipe)))
                pipe.hincrby(keys.failures(kind), scope_token(account_id), 1)
            else:
                pipe.hdel(keys.failures(kind), scope_token(account_id))
    for kind in {kind for kind, _, _ in failing}:
        pipe.expire(keys.failures(kind), FAILURES_TTL_SECONDS)
    replies = pipe.execute()
    again: list[Target] = []
    for kind, account_id, position in failing:
        count, error = int(replies[position]), failed[account_id]
        reason = f"{type(error).__name__}: {error}"
        log.warning(
            "recompute.account_failed",
            account_id=account_id,
            kind=kind.value,
            failures=count,
            error=reason,
        )
        if count < MAX_ACCOUNT_FAILURES:
            again.append(Target(kind, scope_token(account_id)))
            continue
        client.hdel(keys.failures(kind), scope_token(account_id))
        gave_up = InvalidEvent(f"account: recompute failed {count} times: {reason}", "account")
        payload = {"kind": kind.value, "account_id": account_id}
        dead_letter(client, keys, payload, gave_up, "recompute.gave_up", account_id=account_id)
    ctx.send(ctx.coalescer.mark(again))


def run_label(scope: str, result: RecomputeResult) -> str:
    """A run's scope in its log line: `a7` for one account, `a7+36` for 37 drained together."""
    accounts = sorted(scope for scope in result.stats if scope is not None)
    if scope != ACCOUNTS_SCOPE or not accounts:
        return scope
    extra = len(accounts) - 1
    return f"a{accounts[0]}+{extra}" if extra else f"a{accounts[0]}"
