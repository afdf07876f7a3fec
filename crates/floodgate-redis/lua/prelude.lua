-- floodgate prelude: helpers shared by every script. The store prepends this
-- file to each script before loading it, so each script below can use them.
--
-- Every call takes a "now override" (check.lua: one per check; refund and
-- heartbeat: ARGV[1]): "" in production, where time comes from the Redis
-- server's own clock (TIME), or epoch µs sent by a test build (cargo feature
-- `test-clock`) so results can be compared exactly with the local store. Under an override, script time and real time differ,
-- so TTLs get TEST_SLACK_MS more to keep keys alive for the whole test.
--
-- All arithmetic is on integers below 2^53, exact in Lua doubles.

local TEST_SLACK_MS = 600000

-- Redis 5+ replicates script effects by default, which lets a script write
-- after reading TIME; ask for it explicitly on older servers.
if redis.replicate_commands then
  pcall(redis.replicate_commands)
end

-- An integer as the decimal string Redis expects: never an exponent form,
-- whatever number-to-string conversion this Redis version uses. ('%d'
-- converts through a C long: exact for every integer the scripts send (all
-- below 2^53) on the 64-bit builds Redis ships; a third cheaper than
-- '%.0f'.)
local function int(x)
  return string.format('%d', x)
end

-- Script time in epoch µs, and whether it was overridden.
local function script_now(override)
  if override ~= nil and override ~= '' then
    return tonumber(override), true
  end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2]), false
end

-- floor(a / b) for non-negative integers, exact even where the double
-- quotient rounds up to the next integer.
local function idiv(a, b)
  local q = math.floor(a / b)
  if q * b > a then
    q = q - 1
  elseif (q + 1) * b <= a then
    q = q + 1
  end
  return q
end

-- ceil(a / b) for non-negative integers.
local function cdiv(a, b)
  local q = idiv(a, b)
  if q * b < a then
    q = q + 1
  end
  return q
end

-- Milliseconds from `now` until `expires_us`, rounded up (0 once passed),
-- plus the test slack under a time override.
local function ttl_ms(expires_us, now, test)
  local ms = cdiv(math.max(expires_us - now, 0), 1000)
  if ms > 0 and test then
    ms = ms + TEST_SLACK_MS
  end
  return ms
end

-- Expires `key` at `expires_us` (script time), rounded up to whole ms; deletes
-- it when that time has come (the state then no longer changes a decision).
local function expire_at(key, expires_us, now, test)
  local ms = ttl_ms(expires_us, now, test)
  if ms <= 0 then
    redis.call('DEL', key)
  else
    redis.call('PEXPIRE', key, int(ms))
  end
end

-- Writes a counter's string `value`: a counter that `rolled` into a new
-- window (or is new) expires at `expires_us` (deleted if that has come);
-- one still in its window keeps the expiry its window's first write set.
local function write(key, value, rolled, expires_us, now, test)
  if not rolled then
    redis.call('SET', key, value, 'KEEPTTL')
    return
  end
  local ms = ttl_ms(expires_us, now, test)
  if ms <= 0 then
    redis.call('DEL', key)
  else
    redis.call('SET', key, value, 'PX', int(ms))
  end
end


-- ----------------------------------------------------------------------------
