-- fixed_window: one counter reset at multiples of the window since the Unix
-- epoch (floodgate-core algorithm/fixed_window.rs).
--
-- KEYS[1]  the counter: a hash {i = window index, c = hits in window i}
-- ARGV[1]  now override in epoch µs, "" in production (see the prelude)
-- ARGV[2]  hits (0 peeks: allowed iff one hit fits, nothing charged)
-- ARGV[3]  limit
-- ARGV[4]  window in µs
-- Returns  {allowed 0|1, limit, remaining, reset_after_us, retry_after_us,
--           now_us, 0}
-- Expiry   the end of the current window.

local key = KEYS[1]
local now, test = script_now(ARGV[1])
local hits = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local window = tonumber(ARGV[4])

local state = redis.call('HMGET', key, 'i', 'c')
local index = idiv(now, window)
local s_index = tonumber(state[1]) or 0
local current = tonumber(state[2]) or 0
if index > s_index then
  s_index = index
  current = 0
end

local reset_after = (index + 1) * window - now
local allowed = current + math.max(hits, 1) <= limit
if allowed and hits > 0 then
  current = current + hits
  redis.call('HSET', key, 'i', int(s_index), 'c', int(current))
  expire_at(key, (s_index + 1) * window, now, test)
end

local retry = 0
if not allowed then
  retry = reset_after
end
return reply(allowed, limit, math.max(limit - current, 0), reset_after, retry, now, 0)
