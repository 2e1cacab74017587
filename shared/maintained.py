"""Delta-maintained values: the state kept beside each value, and the Lua that updates it.

Beside every value written with a PostgreSQL snapshot, `P:v1:state:K:S` holds what a delta
needs (JSON, built here, read and rewritten only by Lua):

    aggregates: {"g": generation, "at": computed_at, "snap": [xmin, xmax, [xip...]],
                 "b": the minute its weekly numbers are as of (minutes since the epoch; the
                      week before starts at b - 14 d, the current week at b - 7 d, open at
                      its end), "hm": the last minute its crossings are known for,
                 "x1": {minute: emails leaving the current week then}, "x2": {minute: emails
                        leaving the week before then} (shared/windows.py, minutes in (b, hm]),
                 "n": [total, auto_labeled, unread, this week, previous week],
                 "cc": categories_count}
    breakdown:  {"g", "at", "snap", "max": breakdown size,
                 "c": [[category id, name as JSON, count], ...] every category, by name,
                 "u": {category id: count} for categories the snapshot did not know}

Ids and times are decimal strings: Lua numbers are doubles, exact only to 2**53. A delta entry
(kept per scope in `P:v1:deltas:S`, field `txid:email_id`) is `txid|seq|before|after`, a row
being `category,unread,auto_labeled,created_at_us` (empty for none) and `seq` the generation
counter when it was logged. The log's `~e:<kind>:<seq>:<item>` fields add up the change of
the counted numbers that events without a txid published (shared/events/unapplied.py): a write
takes it out of the difference it finds, and the rest is drift; `~u:<kind>` marks a change no
rows explain (no drift counted until a write whose ticket is newer clears it). Rendering a value
from its state gives the same JSON data as `dashcache.recompute.to_data`, and an aggregates
envelope the same moves `"w"` as `dashcache.windows.moves` (tests/events/test_deltas.py compares
them).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache

from dashcache import codec
from dashcache.keys import Kind
from dashcache.snapshots import Snapshot
from dashcache.stats import ScopeStats
from dashcache.windows import EPOCH, HORIZON_MINUTES, LOOKAHEAD_MINUTES, WEEK_MINUTES, minute_of


def micros(moment: datetime) -> int:
    """Exact microseconds since the epoch (no float on the way)."""
    return (moment - EPOCH) // timedelta(microseconds=1)


def state_json(
    kind: Kind, stats: ScopeStats, generation: int, computed_at: datetime, snapshot: Snapshot
) -> str:
    """The state of one value, as the Lua below reads it."""
    counted = stats.counted
    if counted is None:
        raise ValueError("stats without their counts cannot seed a delta-maintained state")
    body: dict[str, object] = {
        "g": generation,
        "at": computed_at.isoformat(),
        "snap": snapshot_wire(snapshot),
    }
    if kind is Kind.AGGREGATES:
        crossings = stats.crossings
        if crossings is None:
            raise ValueError("aggregates without their crossings cannot seed a state")
        c = counted.counts
        base = minute_of(computed_at)
        body["b"] = base
        body["hm"] = base + HORIZON_MINUTES
        body["x1"] = {str(minute): n for minute, n in crossings.leave_week.items() if n}
        body["x2"] = {str(minute): n for minute, n in crossings.leave_previous.items() if n}
        body["n"] = [c.total, c.auto_labeled, c.unread, c.this_week, c.previous_week]
        body["cc"] = stats.aggregates["categories_count"]
    else:
        body["max"] = stats.limit
        by_category = counted.by_category
        body["c"] = [
            [cid, name_json(name), by_category.get(cid, 0)] for cid, name in stats.taxonomy
        ]
        body["u"] = {}
    return codec.dumps(body).decode()


@lru_cache(maxsize=64)
def snapshot_wire(snapshot: Snapshot) -> list[object]:
    """`snapshot.wire()`, computed once per snapshot (every value of a pass shares one)."""
    return snapshot.wire()


@lru_cache(maxsize=4096)
def name_json(name: str) -> str:
    """A category's name as JSON text, as the envelope holds it (the taxonomy repeats in every
    breakdown state, so each name is encoded once)."""
    return codec.dumps(name).decode()


LUA_LIBRARY = (
    f"local WEEK_MIN, LOOKAHEAD = {WEEK_MINUTES}, {LOOKAHEAD_MINUTES}\n"
    + r"""
local function lt(a, b)
  if #a ~= #b then return #a < #b end
  if #a <= 15 then return tonumber(a) < tonumber(b) end
  local ha, hb = tonumber(string.sub(a, 1, -10)), tonumber(string.sub(b, 1, -10))
  if ha ~= hb then return ha < hb end
  return tonumber(string.sub(a, -9)) < tonumber(string.sub(b, -9))
end

local function visible(snap, txid)
  if lt(txid, snap[1]) then return true end
  if not lt(txid, snap[2]) then return false end
  for _, x in ipairs(snap[3]) do if x == txid then return false end end
  return true
end

local function parse_row(text)
  if text == '' then return nil end
  local cat, unread, auto, t = string.match(text, '^(%d*),([01]),([01]),(%-?%d+)$')
  return {cat, unread == '1', auto == '1', tonumber(t)}
end

local function parse_entry(entry)
  local txid, seq, before, after = string.match(entry, '^(%d+)|(%d+)|([^|]*)|([^|]*)$')
  return txid, tonumber(seq), parse_row(before), parse_row(after)
end

local function touches(kind, before, after)
  if not before or not after then return true end
  if kind == 'bd' then return before[1] ~= after[1] end
  return before[2] ~= after[2] or before[3] ~= after[3] or before[4] ~= after[4]
end

local function open_state(raw, kind)
  if not raw then return nil end
  local s = cjson.decode(raw)
  if type(s.snap) ~= 'table' then return nil end
  if kind == 'agg' then
    if not s.b then return nil end
    s.w = {(s.b - 2 * WEEK_MIN) * 60000000, (s.b - WEEK_MIN) * 60000000}
  else
    s.idx = {}
    for i, e in ipairs(s.c) do s.idx[tostring(e[1])] = i end
  end
  return s
end

local function bump(s, field, minute, sign)
  if minute > s.hm then return end
  local key = string.format('%d', minute)
  local n = (s[field][key] or 0) + sign
  if n == 0 then s[field][key] = nil else s[field][key] = n end
end

local function moves(s)
  local last = math.min(s.b + LOOKAHEAD, s.hm)
  local minutes, seen = {}, {}
  for _, field in ipairs({'x1', 'x2'}) do
    for key in pairs(s[field]) do
      local m = tonumber(key)
      if m > s.b and m <= last and not seen[m] then
        seen[m] = true
        minutes[#minutes + 1] = m
      end
    end
  end
  table.sort(minutes)
  local at, de, dp, e, p = {}, {}, {}, 0, 0
  for i, m in ipairs(minutes) do
    local key = string.format('%d', m)
    local left = s.x1[key] or 0
    e = e - left
    p = p + left - (s.x2[key] or 0)
    at[i], de[i] = string.format('%d', m * 60), string.format('%d', e)
    dp[i] = string.format('%d', p)
  end
  return string.format('[%d,[', (last + 1) * 60) .. table.concat(at, ',') .. '],['
    .. table.concat(de, ',') .. '],[' .. table.concat(dp, ',') .. ']]'
end

local function add_row(s, kind, row, sign)
  if not row then return end
  if kind == 'agg' then
    local n, w, t = s.n, s.w, row[4]
    n[1] = n[1] + sign
    if row[3] then n[2] = n[2] + sign end
    if row[2] then n[3] = n[3] + sign end
    if t >= w[2] then
      n[4] = n[4] + sign
      bump(s, 'x1', math.floor(t / 60000000) + WEEK_MIN + 1, sign)
    elseif t >= w[1] then
      n[5] = n[5] + sign
      bump(s, 'x2', math.floor(t / 60000000) + 2 * WEEK_MIN + 1, sign)
    end
  elseif row[1] ~= '' then
    local i = s.idx[row[1]]
    if i then s.c[i][3] = s.c[i][3] + sign else s.u[row[1]] = (s.u[row[1]] or 0) + sign end
  end
end

local function apply(s, kind, before, after)
  add_row(s, kind, before, -1)
  add_row(s, kind, after, 1)
end

local function render(s, kind)
  local data
  if kind == 'agg' then
    local n = s.n
    local pct
    if n[5] == 0 then pct = (n[4] == 0) and '0.0' or '100.0'
    else pct = string.format('%.1f', (n[4] - n[5]) / n[5] * 100) end
    data = string.format('{"total_emails":%d,"auto_labeled":%d,"categories_count":%d,'
      .. '"unread_count":%d,"weekly_growth":{"emails":%d,"previous":%d,"percentage":%s}}',
      n[1], n[2], s.cc, n[3], n[4], n[5], pct)
  else
    local order = {}
    for i = 1, #s.c do order[i] = i end
    table.sort(order, function(a, b)
      local ca, cb = s.c[a][3], s.c[b][3]
      if ca ~= cb then return ca > cb end
      return a < b
    end)
    local parts = {}
    for k = 1, math.min(#order, s.max) do
      local e = s.c[order[k]]
      parts[k] = '[' .. e[2] .. ',' .. string.format('%d', e[3]) .. ']'
    end
    data = '[' .. table.concat(parts, ',') .. ']'
  end
  local head = string.format('{"generation":%d,"computed_at":"%s","data":', s.g, s.at)
  if kind == 'agg' then return head .. data .. ',"w":' .. moves(s) .. '}' end
  return head .. data .. '}'
end

local function close_state(s)
  s.w, s.idx = nil, nil
  local raw = cjson.encode(s)
  return raw
end

local function apply_unseen(states, changed, txid, before, after)
  local kinds = {'agg', 'bd'}
  for j = 1, 2 do
    local s = states[j]
    if s and touches(kinds[j], before, after) and not visible(s.snap, txid) then
      apply(s, kinds[j], before, after)
      changed[j] = true
    end
  end
end

local function write_back(k, states, changed)
  local kinds, stale = {'agg', 'bd'}, {0, 0}
  for j = 1, 2 do
    if changed[j] then
      redis.call('SET', KEYS[k + 1 + j], close_state(states[j]), 'KEEPTTL')
      redis.call('SET', KEYS[k - 1 + j], render(states[j], kinds[j]), 'KEEPTTL')
    elseif not states[j] and redis.call('EXISTS', KEYS[k - 1 + j]) == 1 then
      stale[j] = 1
    end
  end
  return stale
end

local function off(exp, item, found)
  if not exp then return found ~= 0 end
  local r = found - (exp.sure[item] or 0)
  return r < (exp.lo[item] or 0) or r > (exp.hi[item] or 0)
end

local function drift(old, s, kind, exp)
  local fields = {}
  if kind == 'agg' then
    local names, items = {'total_emails', 'auto_labeled', 'unread_count'}, {'t', 'a', 'u'}
    for i = 1, 3 do
      if off(exp, items[i], s.n[i] - old.n[i]) then fields[#fields + 1] = names[i] end
    end
  else
    local was = {}
    for _, e in ipairs(old.c) do was[tostring(e[1])] = e[3] end
    for _, e in ipairs(s.c) do
      local id = tostring(e[1])
      local before = was[id]
      if before and off(exp, id, e[3] - before) then fields[#fields + 1] = e[2] end
    end
  end
  return fields
end
"""
)
"""Lua functions the scripts share: 64-bit id comparison on decimal strings, visibility in a
snapshot, parsing delta entries, applying them to a state (its crossings too), rendering a state
as an envelope (the same JSON as Python's, an aggregates envelope with its moves), and the drift
between two states: the counts deltas maintain (totals, flags, every category both states know)
that differ by more than a published change without delta explains (`exp`: exact `sure` part,
`lo`..`hi` for changes a write may or may not have seen; shared/fence.py); the taxonomy itself
comes only from recomputes."""
