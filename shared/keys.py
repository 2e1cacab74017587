"""The Redis key schema: every key dashcache reads or writes is built here.

Schema version 1, with `P` the configured prefix and `S` a scope token
(`all` for every account, `a<id>` for one account):

| key                | type   | holds                                                      |
|--------------------|--------|------------------------------------------------------------|
| `P:v1:agg:S`       | string | JSON envelope of the aggregates of scope S                 |
| `P:v1:bd:S`        | string | JSON envelope of the category breakdown of scope S         |
| `P:v1:state:K:S`   | string | JSON state of value K of S that deltas update (maintained.py) |
| `P:v1:deltas:S`    | hash   | recent deltas of S, `txid:email_id` -> entry; `~` meta fields |
| `P:v1:seq`         | string | generation counter; a computation takes a ticket first     |
| `P:v1:scopes`      | set    | scope tokens that have been warmed                         |
| `P:v1:lock:S`      | string | single-flight lock of a reader computing scope S (PX)      |
| `P:v1:refresh:S`   | string | marker: a background refresh of S was asked for (PX)       |
| `P:v1:pending:K:T` | string | an event recompute of kind K, target T is queued (PX)      |
| `P:v1:running:K:T` | string | an event recompute of kind K, target T is running (PX)     |
| `P:v1:cooldown:K:T`| string | ms when a debounce after the last start of K, T ends (PXAT)|
| `P:v1:dirty:K`     | set    | account scope tokens whose kind K awaits an `accounts` run |
| `P:v1:failures:K`  | hash   | account token -> failed recomputes of kind K in a row      |
| `P:v1:deadletter`  | list   | rejected event payloads with the reason, newest first      |
| `P:v1:counters`    | hash   | monotonic counters, e.g. `events.rejected`                 |
| `P:v1:metrics`     | hash   | metric totals of every process (see shared/metrics.py)     |
| `P:v1:cdc:status`  | hash   | the active WAL consumer's position, lag and id             |
| `P:v1:cdc:lock`    | string | the one-consumer-per-slot lock: the active consumer's id (PX) |
| `P:v1:cdc:applied` | string | the WAL consumer's last applied commit LSN (an integer)    |
| `P:v1:writer:W`    | string | writer W's count of batches written (dashcache.written, EX) |
| `P:v1:series:N:M`  | string | one number of series N for the minute starting at M (EX 2 h) |
| `P:beat:...`       | (many) | beat's schedule and leader lock (RedBeat), outside `v1`    |

A target T is `all`, `every` (one grouped pass over every scope) or `accounts` (the dirty
accounts of a kind, recomputed in one grouped pass). Pub/sub channel
`P:v1:filled:S`: a single-flight lock holder publishes `ok` or `error: ...` when done
(`abandoned` when it gives up, so waiters take over).

Bump `SCHEMA` when a value's shape changes: old and new workers then never read each other's keys.
Beat's keys stay outside the schema version, so beats of two versions still share one lock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from dashcache.errors import InvalidArgument

SCHEMA = "v1"
ALL_SCOPE = "all"
EVERY_SCOPE = "every"
"""Pseudo scope token of event targets: every warmed scope, recomputed in one grouped pass."""
ACCOUNTS_SCOPE = "accounts"
"""Pseudo target of the markers of event runs over the dirty accounts of a kind."""


class Kind(StrEnum):
    """What a value holds."""

    AGGREGATES = "agg"
    BREAKDOWN = "bd"


Scope = int | None
"""An account id, or None for all accounts."""


def check_account_id(account_id: object) -> Scope:
    """Return a valid scope or raise `InvalidArgument`: None or an integer >= 0."""
    if account_id is None:
        return None
    if isinstance(account_id, bool) or not isinstance(account_id, int):
        raise InvalidArgument(f"account_id must be None or an integer >= 0, got {account_id!r}")
    if not 0 <= account_id < 2**63:
        raise InvalidArgument(
            f"account_id must be an integer between 0 and 2**63-1, got {account_id}"
        )
    return account_id


def check_read_options(fresh: object, max_age: object) -> None:
    """Raise `InvalidArgument` unless `fresh` is a bool and `max_age` None or seconds >= 0."""
    if not isinstance(fresh, bool):
        raise InvalidArgument(f"fresh must be True or False, got {fresh!r}")
    if max_age is not None and (
        isinstance(max_age, bool)
        or not isinstance(max_age, int | float)
        or (isinstance(max_age, float) and not math.isfinite(max_age))
        or max_age < 0
    ):
        raise InvalidArgument(f"max_age must be None or a number of seconds >= 0, got {max_age!r}")


def scope_token(account_id: Scope) -> str:
    """The token naming a scope in keys: `all` or `a<id>`."""
    return ALL_SCOPE if account_id is None else f"a{account_id}"


def parse_scope_token(token: str) -> Scope:
    """Inverse of `scope_token`; raise `InvalidArgument` for anything it cannot have produced."""
    if token == ALL_SCOPE:
        return None
    digits = token[1:]
    if (
        token[:1] != "a"
        or not digits.isascii()
        or not digits.isdigit()
        or digits != str(int(digits))
    ):
        raise InvalidArgument(f"not a scope token: {token!r}")
    return check_account_id(int(digits))


@dataclass(frozen=True, slots=True)
class KeySchema:
    """Builds keys under one prefix."""

    prefix: str

    def value(self, kind: Kind, account_id: Scope) -> str:
        """The key of one cached value."""
        return f"{self.prefix}:{SCHEMA}:{kind.value}:{scope_token(account_id)}"

    def state(self, kind: Kind, account_id: Scope) -> str:
        """The delta-maintained state beside one value (shared/maintained.py)."""
        return f"{self.prefix}:{SCHEMA}:state:{kind.value}:{scope_token(account_id)}"

    def deltas(self, account_id: Scope) -> str:
        """The hash of a scope's recent deltas, by identity `txid:email_id`."""
        return f"{self.prefix}:{SCHEMA}:deltas:{scope_token(account_id)}"

    @property
    def seq(self) -> str:
        """The generation counter."""
        return f"{self.prefix}:{SCHEMA}:seq"

    @property
    def scopes(self) -> str:
        """The set of warmed scope tokens."""
        return f"{self.prefix}:{SCHEMA}:scopes"

    def pending(self, kind: Kind, target: str) -> str:
        """Marker: an event recompute of this kind and target is queued."""
        return f"{self.prefix}:{SCHEMA}:pending:{kind.value}:{target}"

    def running(self, kind: Kind, target: str) -> str:
        """Marker: an event recompute of this kind and target is running."""
        return f"{self.prefix}:{SCHEMA}:running:{kind.value}:{target}"

    def cooldown(self, kind: Kind, target: str) -> str:
        """Marker: a run of this kind and target started less than a debounce ago."""
        return f"{self.prefix}:{SCHEMA}:cooldown:{kind.value}:{target}"

    def claimed(self, token: str) -> str:
        """What the event run with this token claimed, returned again to a retried claim."""
        return f"{self.prefix}:{SCHEMA}:claimed:{token}"

    def marked(self, token: str) -> str:
        """The reply of the mark call with this token, returned again to a retried call."""
        return f"{self.prefix}:{SCHEMA}:marked:{token}"

    def failures(self, kind: Kind) -> str:
        """Hash of accounts whose event recompute of this kind failed, with the count."""
        return f"{self.prefix}:{SCHEMA}:failures:{kind.value}"

    def dirty_accounts(self, kind: Kind) -> str:
        """Set of account scope tokens whose values of this kind await an `accounts` run."""
        return f"{self.prefix}:{SCHEMA}:dirty:{kind.value}"

    @property
    def dead_letters(self) -> str:
        """The capped list of rejected event payloads."""
        return f"{self.prefix}:{SCHEMA}:deadletter"

    @property
    def counters(self) -> str:
        """The hash of monotonic counters (field -> count)."""
        return f"{self.prefix}:{SCHEMA}:counters"

    @property
    def metrics(self) -> str:
        """The hash of metric totals, one field per counter."""
        return f"{self.prefix}:{SCHEMA}:metrics"

    @property
    def cdc_status(self) -> str:
        """The hash the active WAL consumer writes its position, lag and id to."""
        return f"{self.prefix}:{SCHEMA}:cdc:status"

    @property
    def cdc_lock(self) -> str:
        """The one-consumer-per-slot lock of the WAL consumers."""
        return f"{self.prefix}:{SCHEMA}:cdc:lock"

    @property
    def cdc_applied(self) -> str:
        """String: the end LSN (an integer) of the last transaction the WAL consumer applied,
        written after its deltas, so Redis holding it holds them (dashcache.cdc.apply)."""
        return f"{self.prefix}:{SCHEMA}:cdc:applied"

    def writer(self, writer_id: str) -> str:
        """String: how many batches writer `writer_id` wrote, set after each (dashcache.written)."""
        return f"{self.prefix}:{SCHEMA}:writer:{writer_id}"

    def series(self, name: str, minute: int) -> str:
        """One number of the per-minute series `name`; `minute` is the epoch second it starts."""
        return f"{self.prefix}:{SCHEMA}:series:{name}:{minute}"

    @property
    def beat_schedule(self) -> str:
        """RedBeat's sorted set of schedule entries, scored by the unix time each is next due."""
        return f"{self.beat}:schedule"

    @property
    def beat(self) -> str:
        """Prefix of beat's schedule and leader lock (RedBeat's `redbeat_key_prefix`)."""
        return f"{self.prefix}:beat:"

    def shard_marker(self, shard: str) -> str:
        """String: the pass whose shard `shard` (its first account id, or `all`) is queued or
        running; a later pass does not send that shard again while it exists."""
        return f"{self.prefix}:{SCHEMA}:pass:shard:{shard}"

    def pass_progress(self, generation: int) -> str:
        """Hash: one scheduled pass's shards sent and done, scopes warmed, start time."""
        return f"{self.prefix}:{SCHEMA}:pass:{generation}"

    @property
    def reads(self) -> str:
        """Sorted set: account id -> unix time its dashboard was last read (dashcache.reads)."""
        return f"{self.prefix}:{SCHEMA}:reads"

    @property
    def last_pass(self) -> str:
        """String (JSON): the last scheduled pass whose every shard finished."""
        return f"{self.prefix}:{SCHEMA}:pass:last"

    def lock(self, account_id: Scope) -> str:
        """The single-flight lock of a scope: one reader computes both kinds of it."""
        return f"{self.prefix}:{SCHEMA}:lock:{scope_token(account_id)}"

    def filled(self, account_id: Scope) -> str:
        """The pub/sub channel a lock holder announces its outcome on."""
        return f"{self.prefix}:{SCHEMA}:filled:{scope_token(account_id)}"

    def refresh(self, account_id: Scope) -> str:
        """The marker that limits background refresh requests of a scope to one per interval."""
        return f"{self.prefix}:{SCHEMA}:refresh:{scope_token(account_id)}"
