"""The fenced write, in Lua: a value is stored only over an older generation (see shared/store.py).

With a delta state it also applies again the logged deltas the value's snapshot did not see,
reports drift from the stored state, and prunes the delta log (shared/maintained.py).
"""

from dashcache.maintained import LUA_LIBRARY

# KEYS: seq, scopes, then per write: value, state, scope's delta log.   ARGV: ttl, then per write
# one argument, `generation\nscope token\nkind\nstate JSON\npayload` (state '' without a
# snapshot; compact JSON never holds a raw newline), half the arguments to encode and send.
# Returns per write {1 written or 0 fenced, drift fields}. A stored generation above the counter
# means the counter was lost (Redis restarted with values restored): the write is accepted and
# the counter raised past it, so ordering holds again from the next ticket on.
# With a state: refused when its snapshot is older than what the delta log was pruned to (deltas it
# did not see may be gone; the stored value is newer), or when it did not see the transaction of the
# log's barrier `~b` (a TRUNCATE or category change applied in place, shared/cdc/structure.py: a
# count from before it is no longer the scope's). Deltas of the log its snapshot did not see are
# applied again (and the value rendered from the state), the drift from the stored state is returned
# (none while the log's `~u:<kind>` says a published change reached the value without a delta: the
# difference is that change; a write whose ticket is newer than the mark clears it), and the log is
# pruned of deltas every stored state of the scope sees.
# The counts of a state as text: from its first count field to the end. Python writes every state
# with the counts last (shared/maintained.py), and keeps a state's text as it is unless deltas
# change it; two states with the same counts text hold the same counts (a key inside JSON is never
# part of a string), so the pass's usual write (no deltas, nothing drifted) decodes no JSON.
COUNTS_LUA = """
local function counts_of(raw, kind)
  local at = string.find(raw, kind == 'agg' and ',"n":' or ',"max":', 1, true)
  return at and string.sub(raw, at) or raw
end
"""

FENCED_WRITE_SCRIPT = (
    LUA_LIBRARY
    + COUNTS_LUA
    + """
local seq = tonumber(redis.call('GET', KEYS[1]) or '0')
local ttl = ARGV[1]
local out = {}
local added = nil
for i = 3, #KEYS, 3 do
  local g, token, kind, state_raw, payload = string.match(
    ARGV[(i - 3) / 3 + 2], '^(%d+)\\n([^\\n]*)\\n([^\\n]*)\\n([^\\n]*)\\n(.*)$')
  local generation = tonumber(g)
  local accept = 1
  local fields = {}
  local got = redis.call('MGET', KEYS[i], KEYS[i + 1])
  local current, old_raw = got[1], got[2]
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
    local xmin = string.match(state_raw, '"snap":%["(%d+)"')
    local entries = redis.call('HGETALL', log)
    local meta = {}
    for j = 1, #entries, 2 do
      if string.sub(entries[j], 1, 1) == '~' then meta[entries[j]] = entries[j + 1] end
    end
    local horizon = meta['~h']
    if horizon and old_raw and lt(xmin, horizon) then accept = 0 end
    local barrier = meta['~b']
    if accept == 1 and barrier then
      s = open_state(state_raw, kind)
      if not s or not visible(s.snap, string.match(barrier, '^(%d+)|')) then accept = 0 end
    end
    if accept == 1 then
      local changed = false
      for j = 1, #entries, 2 do
        if string.sub(entries[j], 1, 1) ~= '~' then
          s = s or open_state(state_raw, kind)
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
      local expected = meta['~u:' .. kind]
      if expected and generation > tonumber(expected) then
        redis.call('HDEL', log, '~u:' .. kind)
      end
      local same = not changed and counts_of(old_raw or '', kind) == counts_of(state_raw, kind)
      if old_raw and not expected and not same then
        s = s or open_state(state_raw, kind)
        local old = open_state(old_raw, kind)
        if old then fields = drift(old, s, kind) end
      end
      redis.call('SET', KEYS[i + 1], changed and close_state(s) or state_raw, 'EX', ttl)
      meta['~x:' .. kind] = xmin
      local marks = {meta['~x:agg'], meta['~x:bd']}
      local pruned = nil
      if marks[1] and marks[2] then
        local low = lt(marks[1], marks[2]) and marks[1] or marks[2]
        if not horizon or lt(horizon, low) then
          for j = 1, #entries, 2 do
            local txid = string.match(entries[j + 1], '^(%d+)|')
            if txid and lt(txid, low) then redis.call('HDEL', log, entries[j]) end
          end
          pruned = low
        end
      end
      if pruned then
        redis.call('HSET', log, '~x:' .. kind, xmin, '~h', pruned)
      else
        redis.call('HSET', log, '~x:' .. kind, xmin)
      end
      redis.call('EXPIRE', log, ttl)
    end
  elseif accept == 1 then
    redis.call('DEL', KEYS[i + 1])
  end
  if accept == 1 then
    redis.call('SET', KEYS[i], payload, 'EX', ttl)
    if token ~= added then
      redis.call('SADD', KEYS[2], token)
      added = token
    end
  end
  out[#out + 1] = {accept, fields}
end
return out
"""
)
