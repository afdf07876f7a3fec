-- sliding_log: exact, no more than `limit` admitted hits in any interval
-- (t - window, t] (floodgate-core algorithm/sliding_log.rs).
--
-- KEYS[1]  the log: a sorted set, one member per admitted hit, scored by the
--          time it was admitted (epoch µs); members "<nonce>:<i>" are unique
--          across sidecars
-- ARGV[1]  now override in epoch µs, "" in production (see the prelude)
-- ARGV[2]  hits (0 peeks: allowed iff one hit fits, nothing charged)
-- ARGV[3]  limit (at most 10 000)
-- ARGV[4]  window in µs
-- ARGV[5]  nonce naming this check's members (a random u64, decimal)
-- Returns  {allowed 0|1, limit, remaining, reset_after_us, retry_after_us,
--           now_us, 0}
-- Expiry   when the newest entry stops counting (newest + window).

local key = KEYS[1]
local now, test = script_now(ARGV[1])
local hits = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local window = tonumber(ARGV[4])
local nonce = ARGV[5]

-- An entry admitted at t stops counting at t + window.
redis.call('ZREMRANGEBYSCORE', key, '-inf', int(now - window))
local used = redis.call('ZCARD', key)
local need = math.max(hits, 1)
local allowed = used + need <= limit
local len = used
if allowed and hits > 0 then
  -- ZADD in batches: Lua's unpack has a limit on the number of values.
  local batch = {}
  for i = 1, hits do
    batch[#batch + 1] = int(now)
    batch[#batch + 1] = nonce .. ':' .. i
    if #batch >= 1000 or i == hits then
      redis.call('ZADD', key, unpack(batch))
      batch = {}
    end
  end
  len = used + hits
end

-- The score of the entry at `rank` (0 = oldest), as a number.
local function score_at(rank)
  local entry = redis.call('ZRANGE', key, int(rank), int(rank), 'WITHSCORES')
  return tonumber(entry[2])
end

local reset_after = 0
if len > 0 then
  local newest = score_at(-1)
  reset_after = newest + window - now
  if allowed and hits > 0 then
    expire_at(key, newest + window, now, test)
  end
end

local retry = 0
if not allowed then
  if need > limit then
    retry = reset_after
  else
    -- The entry whose expiry leaves room for `need` more.
    retry = score_at(used + need - limit - 1) + window - now
  end
end
return reply(allowed, limit, math.max(limit - len, 0), reset_after, retry, now, 0)
