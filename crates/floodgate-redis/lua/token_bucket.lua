-- token_bucket: GCRA, a sustained limit per window with bursts up to `burst`
-- (floodgate-core algorithm/token_bucket.rs). The state is one timestamp,
-- the theoretical arrival time (TAT).
--
-- KEYS[1]  the TAT: a string holding epoch µs
-- ARGV[1]  now override in epoch µs, "" in production (see the prelude)
-- ARGV[2]  hits (0 peeks: allowed iff one hit fits, nothing charged)
-- ARGV[3]  burst (the bucket size, reported as the limit)
-- ARGV[4]  emission interval in µs: ceil(window / limit)
-- Returns  {allowed 0|1, burst, remaining, reset_after_us, retry_after_us,
--           now_us, TAT after the charge (the receipt id; 0 if not charged)}
-- Expiry   when the bucket is full again (the TAT).

local key = KEYS[1]
local now, test = script_now(ARGV[1])
local hits = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local interval = tonumber(ARGV[4])

local tat = tonumber(redis.call('GET', key) or '0') or 0
local capacity = burst * interval
local start = math.max(tat, now)
local need = math.max(hits, 1)
-- need * interval is computed only when need <= burst: it stays below 2^53.
local allowed = need <= burst and start + need * interval - now <= capacity
local id = 0
if allowed and hits > 0 then
  tat = start + hits * interval
  id = tat
  redis.call('SET', key, int(tat), 'PX', int(ttl_ms(tat, now, test)))
end

local level = math.max(tat, now) - now
local retry = 0
if not allowed then
  if need > burst then
    retry = level
  else
    retry = start + need * interval - now - capacity
  end
end
local remaining = idiv(capacity - math.min(level, capacity), interval)
return reply(allowed, burst, remaining, level, retry, now, id)
