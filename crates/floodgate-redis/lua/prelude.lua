-- floodgate prelude: helpers shared by every script. The store prepends this
-- file to each script before loading it, so each script below can use them.
--
-- Every call takes a "now override" (check.lua: one per check; refund and
-- heartbeat: ARGV[1]): "" in production, where time comes from the Redis
-- server's own clock (TIME), or epoch µs sent by a test build (cargo feature
-- `test-clock`) so results can be compared exactly with the local store.
-- Under an override, script time and real time differ, so TTLs get
-- TEST_SLACK_MS more to keep keys alive for the whole test.
--
-- All arithmetic is on integers below 2^53, exact in Lua doubles.

local TEST_SLACK_MS = 600000

-- Redis 5+ replicates script effects by default, which lets a script write
-- after reading TIME; Redis 6 is asked for it explicitly all the same (its
-- `lua-replicate-commands` may be off). Redis 7 (the first to name its
-- version here) always does: a call saved there is ~1% of a check's.
if redis.REDIS_VERSION == nil then
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
  -- Digits only: arithmetic converts them (tonumber converts twice).
  return t[1] * 1000000 + t[2], false
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

-- The n numbers of the counter string at `key` ("<i>:<p>:<c>" for
-- sliding_window, "<i>:<c>" for fixed_window), or nothing when there is no
-- counter or it does not parse (a new counter). A key of another type is
-- Redis's WRONGTYPE error.
local function read_counter(key, n)
  local value = redis.pcall('GET', key)
  if type(value) == 'table' then
    return error(value)
  end
  if not value then
    return
  end
  -- (Patterns as literals, not a table: a table is built on every call.)
  local a, b, c
  if n == 3 then
    a, b, c = string.match(value, '^(%d+):(%d+):(%d+)$')
  else
    a, b = string.match(value, '^(%d+):(%d+)$')
  end
  if a == nil then
    return
  end
  -- Digits only: arithmetic converts them (tonumber converts twice).
  return a + 0, b + 0, c and c + 0
end

-- The counter string read_counter reads, of 2 or 3 numbers.
local function counter_string(a, b, c)
  if c == nil then
    return string.format('%d:%d', a, b)
  end
  return string.format('%d:%d:%d', a, b, c)
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
