-- refund: undoes one earlier charge, as floodgate-core's Algorithm::refund
-- does: the refund of a denied multi-policy check, or a lease release.
-- A charge whose window or debt has passed is left alone; a missing key
-- (expired) means there is nothing left to undo.
--
-- KEYS[1]  the counter the charge was made on (same layout as its check)
-- ARGV[1]  now override in epoch µs, "" in production (see the prelude)
-- ARGV[2]  algorithm: "sw" | "fw" | "log" | "tb" | "cc"
-- ARGV[3]  hits charged
-- ARGV[4]  receipt at_us: when the charge was made (epoch µs)
-- ARGV[5]  receipt id: the TAT after the charge ("tb"), the lease id
--          ("cc", a u64 kept as a string), unused otherwise
-- ARGV[6]  window in µs ("sw", "fw", "log"), emission interval in µs ("tb"),
--          unused for "cc"
-- Returns  1 when something was undone, 0 otherwise.

local key = KEYS[1]
local now, test = script_now(ARGV[1])
local kind = ARGV[2]
local hits = tonumber(ARGV[3])
local at = tonumber(ARGV[4])
local span = tonumber(ARGV[6])

if redis.call('EXISTS', key) == 0 then
  return 0
end

if kind == 'sw' or kind == 'fw' then
  -- The counter's string: "<i>:<p>:<c>" (sw) or "<i>:<c>" (fw); the charge
  -- is in c if its window is still i, in p if it was i-1 (sw).
  local fields = { read_counter(key, kind == 'sw' and 3 or 2) }
  if #fields == 0 then
    return 0
  end
  local charged = idiv(at, span)
  local field
  if charged == fields[1] then
    field = #fields
  elseif kind == 'sw' and charged + 1 == fields[1] then
    field = 2
  else
    return 0
  end
  fields[field] = math.max(fields[field] - hits, 0)
  write(key, counter_string(unpack(fields)), false)
  return 1
elseif kind == 'log' then
  -- Entries admitted at the same µs are interchangeable: remove `hits` of them.
  local members = redis.call('ZRANGEBYSCORE', key, int(at), int(at), 'LIMIT', 0, int(hits))
  for i = 1, #members, 1000 do
    redis.call('ZREM', key, unpack(members, i, math.min(i + 999, #members)))
  end
  local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if newest[2] ~= nil then
    expire_at(key, tonumber(newest[2]) + span, now, test)
  end
  return #members > 0 and 1 or 0
elseif kind == 'tb' then
  -- The debt drains first-in first-out: only receipt id - now is still owed.
  local owed = math.min(hits * span, math.max(tonumber(ARGV[5]) - now, 0))
  local tat = math.max((tonumber(redis.call('GET', key)) or 0) - owed, 0)
  if tat > now then
    redis.call('SET', key, int(tat), 'PX', int(ttl_ms(tat, now, test)))
  else
    redis.call('DEL', key)
  end
  return 1
elseif kind == 'cc' then
  local removed = redis.call('ZREM', key, ARGV[5] .. ':' .. int(hits))
  local latest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if latest[2] ~= nil then
    expire_at(key, tonumber(latest[2]), now, test)
  end
  return removed
end
return redis.error_reply('floodgate refund: unknown algorithm ' .. tostring(kind))
