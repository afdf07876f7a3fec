-- reset: an admin reset of one counter. Deletes its state and its lockout
-- and, for a policy whose reservations can be settled, leaves a marker of
-- when it was cleared: a later settle of a reservation charged before it
-- then gives nothing back (settle.lua), so a reset never hands out more
-- than a fresh counter.
--
-- KEYS[1]  the counter (same layout as its check)
-- KEYS[2]  its lockout: KEYS[1] .. ":block"
-- KEYS[3]  the lockout under the bare tag: <prefix>:{<counter key>}:block
-- KEYS[4]  the marker: KEYS[1] .. ":cleared"
-- ARGV[1]  now override in epoch µs, "" in production (see the prelude)
-- ARGV[2]  how long a reservation record is kept, in µs; 0 = no marker
-- Returns  the number of keys deleted

local now, test = script_now(ARGV[1])
local deleted = redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
local keep = tonumber(ARGV[2]) or 0
if keep > 0 then
  redis.call('SET', KEYS[4], int(now), 'PX', int(math.max(ttl_ms(now + keep, now, test), 1)))
end
return deleted
