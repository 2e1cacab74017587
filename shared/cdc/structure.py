"""TRUNCATE and category changes applied in place to every scope's states: no recount.

A TRUNCATE of the emails leaves every count at zero; a category inserted, renamed or deleted
changes the taxonomy every breakdown state holds (ids, names as JSON, counts, in name order)
and `categories_count`. Neither needs a read of the database: one script call per batch of
scopes rewrites each state and renders its value again, atomically per scope, so a reader sees
the value before the change or after it, never a mix. Counts move with their category: a
deleted category's count goes to the state's `u` (categories its snapshot does not know), where
the emails the foreign key moves to no category (`ON DELETE SET NULL`, replicated as updates of
the same transaction) take it from; an inserted category takes its count from `u`.

Each change is identified by (txid, position among its transaction's structural changes) and
applied only to a state whose snapshot did not see the transaction and that did not take it
already (field `k`), so a re-delivered transaction changes nothing twice. The rewritten value
takes a new ticket as its generation: a recompute whose ticket predates the change (and may
have read the database before it) is fenced. The scope's log gets the barrier `~b` (`txid|b`):
the fenced write refuses any state whose snapshot did not see it (shared/fence.py), so an
expired or state-less value is not filled again from before the change; the log's pruning
drops it once every stored state sees it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import redis

from dashcache.events.apply import SCOPES_PER_CALL, scope_keys
from dashcache.keys import KeySchema
from dashcache.maintained import LUA_LIBRARY, name_json


class Op(StrEnum):
    """A structural change of the mapped tables."""

    TRUNCATE_EMAILS = "truncate_emails"
    TRUNCATE_CATEGORIES = "truncate_categories"
    INSERT = "insert"
    RENAME = "rename"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class Restructure:
    """One structural change: its transaction, its position among that transaction's
    structural changes, and the category (with its name) it is about."""

    txid: int
    position: int
    op: Op
    category_id: int = 0
    name: str = ""

    def args(self) -> list[str | int]:
        """The script's arguments after the TTL."""
        return [
            str(self.txid),
            self.position,
            self.op.value,
            str(self.category_id),
            name_json(self.name),
        ]


# KEYS: seq, then per scope: agg value, bd value, agg state, bd state, delta log.
# ARGV: ttl, txid, position, op, category id, name as JSON. Returns the states it changed.
_RESTRUCTURE = (
    LUA_LIBRARY
    + r"""
local ttl, txid, position, op, cid, name = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4],
  ARGV[5], ARGV[6]
local ticket = redis.call('INCR', KEYS[1])
local kinds = {'agg', 'bd'}

local function bytes_lt(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

local function place(c, entry)
  local key = cjson.decode(entry[2])
  local at = #c + 1
  for i, e in ipairs(c) do
    if bytes_lt(key, cjson.decode(e[2])) then at = i break end
  end
  table.insert(c, at, entry)
end

local function find(s, id)
  for i, e in ipairs(s.c) do if tostring(e[1]) == id then return i end end
  return nil
end

local function change_agg(s)
  if op == 'truncate_emails' then s.n = {0, 0, 0, 0, 0}
  elseif op == 'truncate_categories' then s.cc = 0
  elseif op == 'insert' then s.cc = s.cc + 1
  elseif op == 'delete' then s.cc = math.max(s.cc - 1, 0)
  else return false end
  return true
end

local function change_bd(s)
  if op == 'truncate_emails' then
    for _, e in ipairs(s.c) do e[3] = 0 end
    s.u = {}
    return true
  end
  if op == 'truncate_categories' then
    for _, e in ipairs(s.c) do
      local id = tostring(e[1])
      if e[3] ~= 0 then s.u[id] = (s.u[id] or 0) + e[3] end
    end
    s.c = {}
    return true
  end
  local i = find(s, cid)
  if op == 'insert' then
    if i then return false end
    place(s.c, {tonumber(cid), name, s.u[cid] or 0})
    s.u[cid] = nil
  elseif op == 'delete' then
    if not i then return false end
    local count = s.c[i][3]
    table.remove(s.c, i)
    if count ~= 0 then s.u[cid] = (s.u[cid] or 0) + count end
  else
    if not i or s.c[i][2] == name then return false end
    local entry = table.remove(s.c, i)
    entry[2] = name
    place(s.c, entry)
  end
  return true
end

local function taken(s)
  return visible(s.snap, txid) or (s.k and s.k[1] == txid and s.k[2] >= position)
end

local changed = 0
for k = 2, #KEYS, 5 do
  for j = 1, 2 do
    local kind = kinds[j]
    local raw = redis.call('GET', KEYS[k + 1 + j])
    local s = raw and open_state(raw, kind)
    if s and not taken(s) then
      local did
      if kind == 'agg' then did = change_agg(s) else did = change_bd(s) end
      if did then
        if s.g >= ticket then
          ticket = s.g + 1
          redis.call('SET', KEYS[1], ticket)
        end
        s.g = ticket
        s.k = {txid, position}
        redis.call('SET', KEYS[k - 1 + j], render(s, kind), 'KEEPTTL')
        redis.call('SET', KEYS[k + 1 + j], close_state(s), 'KEEPTTL')
        changed = changed + 1
      end
    elseif not s and (kind == 'bd' or op ~= 'rename') then
      redis.call('DEL', KEYS[k - 1 + j])
    end
  end
  redis.call('HSET', KEYS[k + 4], '~b', txid .. '|b')
  redis.call('EXPIRE', KEYS[k + 4], ttl)
end
return changed
"""
)


class StructureApplier:
    """Applies structural changes to every warmed scope under one key prefix."""

    def __init__(self, client: redis.Redis, keys: KeySchema, ttl_seconds: int) -> None:
        self.client = client
        self.keys = keys
        self.ttl_seconds = ttl_seconds
        self._apply = client.register_script(_RESTRUCTURE)

    def apply(self, change: Restructure) -> tuple[int, int]:
        """Apply one change to every warmed scope; (scopes, states changed)."""
        members: set[bytes] = self.client.smembers(self.keys.scopes)  # type: ignore[assignment]
        tokens = sorted(token.decode() for token in members)
        pipe = self.client.pipeline(transaction=False)
        for start in range(0, len(tokens), SCOPES_PER_CALL):
            keys: list[str] = [self.keys.seq]
            for token in tokens[start : start + SCOPES_PER_CALL]:
                keys += scope_keys(self.keys, token)
            self._apply(keys=keys, args=[self.ttl_seconds, *change.args()], client=pipe)
        return len(tokens), sum(int(n) for n in pipe.execute())
