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

from shared.keys import KeySchema, Kind, Scope, parse_scope_token, scope_token
from shared.logging import get_logger
from shared.maintained import LUA_LIBRARY

log = get_logger(__name__)

WRITE_CHUNK = 256
"""Values written per script call."""

# KEYS: seq, scopes, then per write: value, state, scope's delta log.   ARGV: ttl, then per write:
# generation, payload, scope token, state JSON ('' without a snapshot), kind.
# Returns per write {1 written or 0 fenced, drift fields}. A stored generation above the counter
# means the counter was lost (Redis restarted with values restored): the write is accepted and
# the counter raised past it, so ordering holds again from the next ticket on.
# With a state: refused when its snapshot is older than what the delta log was pruned to (deltas
# it did not see may be gone; the stored value is newer). Deltas of the log its snapshot did not
# see are applied again (and the value rendered from the state), the drift from the stored state
# is returned, and the log is pruned of deltas every stored state of the scope sees.
FENCED_WRITE_SCRIPT = (
    LUA_LIBRARY
    + """
local seq = tonumber(redis.call('GET', KEYS[1]) or '0')
local ttl = ARGV[1]
local out = {}
for i = 3, #KEYS, 3 do
  local base = (i - 3) / 3 * 5 + 2
  local generation = tonumber(ARGV[base])
  local payload, kind, state_raw = ARGV[base + 1], ARGV[base + 4], ARGV[base + 3]
  local accept = 1
  local fields = {}
  local current = redis.call('GET', KEYS[i])
  if current then
    local stored = tonumber(string.match(current, '^{"generation":(%d+),'))
    if not stored then
      local ok, decoded = pcall(cjson.decode, current)
      stored = ok and tonumber(decoded['generation']) or 0
    end
    if stored > seq then
      redis.call('SET', KEYS[1], stored)
      seq = stored
    elseif stored >= generation then
      accept = 0
    end
  end
  local log = KEYS[i + 2]
  local s = nil
  if accept == 1 and state_raw ~= '' then
    s = open_state(state_raw, kind)
    local old_raw = redis.call('GET', KEYS[i + 1])
    local horizon = redis.call('HGET', log, '~h')
    if horizon and old_raw and lt(s.snap[1], horizon) then accept = 0 end
    if accept == 1 then
      local entries = redis.call('HGETALL', log)
      local changed = false
      for j = 1, #entries, 2 do
        if string.sub(entries[j], 1, 1) ~= '~' then
          local txid, logged, before, after = parse_entry(entries[j + 1])
          if not visible(s.snap, txid) then
            if logged < generation and not lt(txid, s.snap[2]) then
              redis.call('HDEL', log, entries[j])
            elseif touches(kind, before, after) then
              apply(s, kind, before, after)
              changed = true
            end
          end
        end
      end
      if changed then payload = render(s, kind) end
      if old_raw then
        local old = open_state(old_raw, kind)
        if old then fields = drift(old, s, kind) end
      end
      redis.call('SET', KEYS[i + 1], close_state(s), 'EX', ttl)
      redis.call('HSET', log, '~x:' .. kind, s.snap[1])
      local marks = redis.call('HMGET', log, '~x:agg', '~x:bd')
      if marks[1] and marks[2] then
        local low = lt(marks[1], marks[2]) and marks[1] or marks[2]
        if not horizon or lt(horizon, low) then
          for j = 1, #entries, 2 do
            local txid = string.match(entries[j + 1], '^(%d+)|')
            if txid and lt(txid, low) then redis.call('HDEL', log, entries[j]) end
          end
          redis.call('HSET', log, '~h', low)
        end
      end
      redis.call('EXPIRE', log, ttl)
    end
  elseif accept == 1 then
    redis.call('DEL', KEYS[i + 1])
  end
  if accept == 1 then
    redis.call('SET', KEYS[i], payload, 'EX', ttl)
    redis.call('SADD', KEYS[2], ARGV[base + 2])
  end
  out[#out + 1] = {accept, fields}
end
return out
"""
)


@dataclass(frozen=True, slots=True)
class Envelope:
    """A stored value: its data, when it was computed (as of), and its generation."""

    data: Any
    computed_at: datetime
    generation: int

    def to_json(self) -> bytes:
        """Compact UTF-8 JSON; `generation` first, so it is cheap to spot."""
        body = {
            "generation": self.generation,
            "computed_at": self.computed_at.isoformat(),
            "data": self.data,
        }
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Envelope:
        """Parse what `to_json` wrote."""
        return cls(*decode_envelope(raw))


def decode_envelope(raw: bytes) -> tuple[Any, datetime, int]:
    """(data, computed_at, generation) from what `Envelope.to_json` wrote, without building an
    Envelope: the readers' hit path uses this."""
    body = json.loads(raw)
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
                token = scope_token(item.account_id)
                args += [item.envelope.generation, payload, token, item.state or "", item.kind]
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
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.01), retries=1, supported_errors=errors),
        protocol=2,
    )


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
