"""The Redis store: JSON envelopes, generation tickets and the fenced write.

Every computation takes a ticket (INCR of the generation counter) *before* it reads the
database. A write is accepted only when the key holds nothing, or a value with a lower
generation; so a computation that started before another can never overwrite its newer value.
The check and the SET happen in one Lua script, atomically.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from dashcache import codec
from dashcache.advance import ADVANCE_SCRIPT
from dashcache.fence import FENCED_WRITE_SCRIPT
from dashcache.keys import KeySchema, Kind, Scope, parse_scope_token, scope_token
from dashcache.logging import get_logger
from dashcache.redis_url import is_sentinel, parse_sentinel_url
from dashcache.sentinel import sentinel_client
from dashcache.windows import Moves, minute_of

log = get_logger(__name__)

WRITE_CHUNK = 256
"""Values written per script call."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """A stored value: its data, when it was computed (as of), and its generation; an
    aggregates value read in a snapshot also carries the moves of its weekly numbers over the
    next minutes (`windows`, the envelope's `"w"`: shared/windows.py)."""

    data: Any
    computed_at: datetime
    generation: int
    windows: Moves | None = None

    def to_json(self) -> bytes:
        """Compact UTF-8 JSON; `generation` first, so it is cheap to spot."""
        body = {
            "generation": self.generation,
            "computed_at": self.computed_at.isoformat(),
            "data": self.data,
        }
        if self.windows is not None:
            body["w"] = self.windows
        return codec.dumps(body)

    @classmethod
    def from_json(cls, raw: bytes) -> Envelope:
        """Parse what `to_json` wrote."""
        body = codec.loads(raw)
        computed_at = datetime.fromisoformat(body["computed_at"])
        return cls(body["data"], computed_at, body["generation"], body.get("w"))


def decode_envelope(raw: bytes) -> tuple[Any, datetime, int]:
    """(data, computed_at, generation) from what `Envelope.to_json` wrote, without building an
    Envelope (the data as stored: its weekly numbers not moved)."""
    body = codec.loads(raw)
    return body["data"], datetime.fromisoformat(body["computed_at"]), body["generation"]


@dataclass(frozen=True, slots=True)
class Write:
    """One value to write through the fence; `state` (shared/maintained.py) when it was computed
    in a PostgreSQL snapshot, so deltas can follow it."""

    kind: Kind
    account_id: Scope
    envelope: Envelope
    state: str | None = None


@dataclass(frozen=True, slots=True)
class Drift:
    """A stored value the write found wrong (fields that do not move with the clock)."""

    kind: Kind
    key: str
    fields: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Written:
    """What a fenced write did: per write, whether it was stored; the drift it found."""

    flags: list[bool]
    drift: list[Drift]


@dataclass(frozen=True, slots=True)
class FencedWritePlan:
    """The fenced-write script calls for a batch of writes (pure: the sync and asyncio stores
    both run it). `indexes` are the writes within the size limit, in call order."""

    writes: Sequence[Write]
    indexes: list[int]
    calls: list[tuple[list[str], list[Any]]]
    keys: KeySchema

    @classmethod
    def of(
        cls, writes: Sequence[Write], keys: KeySchema, ttl: int, max_value_bytes: int | None
    ) -> FencedWritePlan:
        """Plan `writes`, refusing (and logging) each value larger than `max_value_bytes`."""
        accepted = [
            (index, payload)
            for index, payload in enumerate(_payloads(writes, keys, max_value_bytes))
            if payload
        ]
        calls: list[tuple[list[str], list[Any]]] = []
        for start in range(0, len(accepted), WRITE_CHUNK):
            chunk_keys = [keys.seq, keys.scopes]
            args: list[Any] = [ttl]
            for index, payload in accepted[start : start + WRITE_CHUNK]:
                item = writes[index]
                chunk_keys += [
                    keys.value(item.kind, item.account_id),
                    keys.state(item.kind, item.account_id),
                    keys.deltas(item.account_id),
                ]
                head = f"{item.envelope.generation}\n{scope_token(item.account_id)}\n"
                head += f"{item.kind.value}\n{item.state or ''}\n"
                args.append(head.encode() + payload)
            calls.append((chunk_keys, args))
        return cls(writes, [index for index, _ in accepted], calls, keys)

    def written(self, replies: Sequence[Sequence[Any]]) -> Written:
        """Per write, whether it was stored, and the drift found, from the script's replies
        (one list per call)."""
        flags = [False] * len(self.writes)
        drift: list[Drift] = []
        per_write = (reply for chunk in replies for reply in chunk)
        for index, (flag, fields) in zip(self.indexes, per_write, strict=True):
            flags[index] = bool(flag)
            if fields:
                item = self.writes[index]
                key = self.keys.value(item.kind, item.account_id)
                drift.append(Drift(item.kind, key, tuple(_field_name(raw) for raw in fields)))
        return Written(flags, drift)


def _payloads(
    writes: Sequence[Write], keys: KeySchema, max_value_bytes: int | None
) -> list[bytes | None]:
    """Each write's JSON, or None when it is over the size limit."""
    payloads: list[bytes | None] = []
    for item in writes:
        payload = item.envelope.to_json()
        if max_value_bytes is not None and len(payload) > max_value_bytes:
            log.warning(
                "store.value_too_large",
                key=keys.value(item.kind, item.account_id),
                size_bytes=len(payload),
                limit_bytes=max_value_bytes,
            )
            payloads.append(None)
        else:
            payloads.append(payload)
    return payloads


def make_redis(url: str, timeout_seconds: float, retry_timeouts: bool = True) -> redis.Redis:
    """A client with explicit timeouts and a short retry, speaking RESP2 on every server.

    A broken connection is retried once (it is usually a stale one after a Redis restart); a
    timeout is retried too unless `retry_timeouts` is False, so a reader never waits twice.
    """
    errors: tuple[type[Exception], ...] = (redis.ConnectionError,)
    if retry_timeouts:
        errors += (redis.TimeoutError, TimeoutError)
    options: dict[str, Any] = {
        "socket_timeout": timeout_seconds,
        "socket_connect_timeout": timeout_seconds,
        "health_check_interval": 30,
        "retry": Retry(ExponentialBackoff(cap=0.2, base=0.01), retries=1, supported_errors=errors),
        "protocol": 2,
    }
    if is_sentinel(url):
        return sentinel_client(parse_sentinel_url(url), options)
    return redis.Redis.from_url(url, **options)


class RedisStore:
    """Reads and fenced writes of dashboard values under one key prefix."""

    def __init__(
        self,
        client: redis.Redis,
        keys: KeySchema,
        ttl_seconds: int,
        max_value_bytes: int | None = None,
    ) -> None:
        self.client = client
        self.keys = keys
        self.ttl_seconds = ttl_seconds
        self.max_value_bytes = max_value_bytes
        self._fenced_write = client.register_script(FENCED_WRITE_SCRIPT)
        self._advance = client.register_script(ADVANCE_SCRIPT)

    def advance(self, account_id: Scope, now: datetime) -> bytes | None:
        """A scope's aggregates envelope with its weekly windows advanced to `now`'s minute
        (shared/advance.py); None when it cannot be (no state, past its horizon): recount."""
        keys = [
            self.keys.value(Kind.AGGREGATES, account_id),
            self.keys.state(Kind.AGGREGATES, account_id),
        ]
        found: bytes | None = self._advance(keys=keys, args=[minute_of(now)])
        return found or None

    def take_ticket(self) -> int:
        """A new generation, greater than every one handed out before; take it before reading."""
        return int(self.client.incr(self.keys.seq))

    def get(self, kind: Kind, account_id: Scope) -> Envelope | None:
        """The stored envelope, or None when the key is missing."""
        raw: bytes | None = self.client.get(self.keys.value(kind, account_id))  # type: ignore[assignment]
        return None if raw is None else Envelope.from_json(raw)

    def write(self, writes: Sequence[Write]) -> list[bool]:
        """Write through the fence; per write, True if stored, False if a newer value won or
        the value is larger than `max_value_bytes` (refused and logged as `store.value_too_large`).
        """
        return self.write_checked(writes).flags

    def write_checked(self, writes: Sequence[Write]) -> Written:
        """`write`, also returning the stored values it found drifted from what it wrote.

        Large batches go in chunks, pipelined, so no single script blocks Redis for long.
        """
        plan = FencedWritePlan.of(writes, self.keys, self.ttl_seconds, self.max_value_bytes)
        pipe = self.client.pipeline(transaction=False)
        for keys, args in plan.calls:
            self._fenced_write(keys=keys, args=args, client=pipe)
        return plan.written(pipe.execute())

    def warmed_accounts(self) -> list[int]:
        """Account ids whose scopes have been written before."""
        tokens: set[bytes] = self.client.smembers(self.keys.scopes)  # type: ignore[assignment]
        scopes = (parse_scope_token(token.decode()) for token in tokens)
        return sorted(scope for scope in scopes if scope is not None)


def _field_name(raw: bytes) -> str:
    """A drift field from the script: an aggregates field, or a category's name as JSON."""
    text = raw.decode()
    return str(json.loads(text)) if text.startswith('"') else text
