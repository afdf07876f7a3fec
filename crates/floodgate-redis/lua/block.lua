-- block: lockouts (block_for), mirroring floodgate-core policy/block.rs.
-- A denied op with a cost starts a block; while it lasts every op on the
-- key is denied. check.lua reads the record before the algorithm runs and
-- writes it on a denial, in the same call as the check (no extra round
-- trip): sidecars sharing the Redis agree exactly.
--
-- Key      "<prefix>:{<policy>:<values>}:block": the counter's key up to
--          its hash tag, then ":block" (same slot as the counter on a
--          Cluster; whatever the algorithm and window, so a reload that
--          changes them keeps the block): a string
--          "<until_us>:<level>:<expires_us>", the block's end, the offence
--          level (1 = first) and when the record may be forgotten (the
--          block's end, plus block_max with escalation)
-- Args     (from the op's spec) block_for and block_max in µs; block_max
--          equal to block_for means no escalation
-- Expiry   expires_us, rounded up to whole ms.

-- Highest offence level kept (floodgate-core MAX_LEVEL).
local MAX_BLOCK_LEVEL = 64

-- The lockout record's key of counter key `key`. (Neither the prefix nor
-- an escaped value can hold '}': the first one closes the hash tag.)
local function block_key(key)
  return string.match(key, '^[^}]*}') .. ':block'
end

-- The record of `key`'s counter: until_us, level, expires_us; nothing when
-- there is none (or it does not parse). A key of another type is Redis's
-- WRONGTYPE error.
local function block_read(key)
  local value = redis.pcall('GET', block_key(key))
  if type(value) == 'table' then
    return error(value)
  end
  if not value then
    return
  end
  local u, l, e = string.match(value, '^(%d+):(%d+):(%d+)$')
  if u == nil then
    return
  end
  return u + 0, l + 0, e + 0
end

-- Starts a block at `now` after a denial, given the record read before
-- (level, expires_us; nil when none); returns the block's end.
local function block_start(key, level, expires, now, test, block_for, block_max)
  local escalates = block_max > block_for
  local next_level = 1
  if escalates and level ~= nil and expires > now then
    next_level = math.min(level + 1, MAX_BLOCK_LEVEL)
  end
  local length = block_for
  for _ = 2, next_level do
    if length >= block_max then
      break
    end
    length = math.min(length * 2, block_max)
  end
  local until_us = now + length
  local forget = until_us
  if escalates then
    forget = until_us + block_max
  end
  redis.call('SET', block_key(key), string.format('%d:%d:%d', until_us, next_level, forget),
    'PX', int(ttl_ms(forget, now, test)))
  return until_us
end
