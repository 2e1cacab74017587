"""Advancing an aggregates value's weekly windows to a later minute, in Redis, from its state.

An envelope carries the moves of its weekly numbers for a few minutes (shared/windows.py); a
reader past them calls this script, which folds the crossings up to the given minute into the
state's counts, moves the state's windows there and renders the envelope again: the numbers as
of that minute, and the moves of the minutes after it. No database read, no new generation. It
returns nothing when the value cannot be advanced (no state, or the minute is past the state's
horizon): the reader recounts.
"""

from dashcache.maintained import LUA_LIBRARY

# KEYS: aggregates value, aggregates state.   ARGV: the minute (minutes since the epoch).
# Returns the envelope as of that minute (or as stored, when the state is already there or later),
# or false.
ADVANCE_SCRIPT = (
    LUA_LIBRARY
    + """
local raw = redis.call('GET', KEYS[2])
if not raw or redis.call('EXISTS', KEYS[1]) == 0 then return false end
local s = open_state(raw, 'agg')
local m = tonumber(ARGV[1])
if not s or m > s.hm then return false end
if m <= s.b then return redis.call('GET', KEYS[1]) end
local n = s.n
for key, left in pairs(s.x1) do
  if tonumber(key) <= m then
    n[4], n[5], s.x1[key] = n[4] - left, n[5] + left, nil
  end
end
for key, gone in pairs(s.x2) do
  if tonumber(key) <= m then n[5], s.x2[key] = n[5] - gone, nil end
end
s.b = m
local envelope = render(s, 'agg')
redis.call('SET', KEYS[2], close_state(s), 'KEEPTTL')
redis.call('SET', KEYS[1], envelope, 'KEEPTTL')
return envelope
"""
)
