-- reserve: the record a reserving check leaves for a later settle
-- (settle.lua). Loaded into the check script before check.lua, which
-- commits it with the op's charge (flags +8), so a denied check leaves none.
--
-- Key      the op's counter key followed by ":r:<nonce>" (same hash tag, so
--          the same Cluster slot as the counter)
-- Args     the op's c word, "<nonce as 32 hex digits>/<record ttl in µs>",
--          the hits charged (the estimate), script time, the test flag and
--          the receipt id of the charge (the TAT after it for token_bucket,
--          0 otherwise)
-- Returns  the commit writing "<estimate>:<at_us>:<receipt id>:<expires_us>"
--          with that expiry (nil when c is malformed: nothing is kept)
-- Expiry   ttl after the charge (settle.lua also compares expires_us with
--          its own time, so a time override expires records exactly).

-- Longest debt a settleable token bucket may hold beyond now, in µs
-- (floodgate-core algorithm/settle.rs MAX_DEBT_US).
local MAX_DEBT_US = 316224000000000

local function reservation(key, c, hits, now, test, id)
  local nonce, ttl = string.match(c, '^(%x+)/(%d+)$')
  if nonce == nil then
    return nil
  end
  local expires = now + ttl
  local value = string.format('%d:%d:%d:%d', hits, now, id, expires)
  return function()
    redis.call('SET', key .. ':r:' .. nonce, value, 'PX', int(ttl_ms(expires, now, test)))
  end
end
