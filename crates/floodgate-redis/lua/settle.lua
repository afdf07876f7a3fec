-- settle: applies the actual cost of one reservation, as floodgate-core's
-- Algorithm::settle and the local store do: marks the record settled (so
-- it applies once), then charges actual - estimate past any limit (an
-- overrun) or gives back estimate - actual to the window or debt the
-- reservation charged (a refund). One call, one round trip, Redis's clock.
--
-- KEYS[1]  the counter the reservation charged (same layout as its check)
-- KEYS[2]  the reservation's record: KEYS[1] .. ":r:<nonce>" (reserve.lua)
-- ARGV[1]  now override in epoch µs, "" in production (see the prelude)
-- ARGV[2]  algorithm: "sw" | "fw" | "tb"
-- ARGV[3]  the actual cost
-- ARGV[4]  window in µs ("sw", "fw"), emission interval in µs ("tb")
-- ARGV[5]  when the settlement id says the reservation was charged (µs)
-- ARGV[6]  how long a record is kept, in µs
-- Returns  {status, estimate}: status 1 settled (estimate: what the check
--          had charged), 2 settled already, 3 lapsed (no record, and the
--          id's time says it would have lapsed), 4 unknown (no record
--          although it would still be kept: a forged id). Only status 1
--          changes anything.

local counter, name = KEYS[1], KEYS[2]
local now, test = script_now(ARGV[1])
local kind = ARGV[2]
local actual = tonumber(ARGV[3])
local span = tonumber(ARGV[4])
if (kind ~= 'sw' and kind ~= 'fw' and kind ~= 'tb') or actual == nil or span == nil then
  return redis.error_reply('floodgate settle: malformed arguments')
end

local record = redis.call('GET', name)
if not record then
  if tonumber(ARGV[5]) + tonumber(ARGV[6]) <= now then
    return { 3, 0 }
  end
  return { 4, 0 }
end
local settled_until = string.match(record, '^s:(%d+)$')
if settled_until ~= nil then
  if settled_until + 0 <= now then
    return { 3, 0 }
  end
  return { 2, 0 }
end
local estimate, at, id, expires = string.match(record, '^(%d+):(%d+):(%d+):(%d+)$')
if estimate == nil or expires + 0 <= now then
  redis.call('DEL', name)
  return { 3, 0 }
end
estimate, at, id, expires = estimate + 0, at + 0, id + 0, expires + 0
-- Settled from now on: a marker until the record would have lapsed.
redis.call('SET', name, 's:' .. int(expires), 'KEEPTTL')

-- A window counter's fields, rolled to the current window as a check rolls
-- them; n = 3 ("sw": index, previous, current) or 2 ("fw": index, current).
local function rolled_window(n)
  local fields = { read_counter(counter, n) }
  local index = idiv(now, span)
  local rolled = #fields == 0 or fields[1] ~= index
  if rolled then
    local previous = 0
    if n == 3 and #fields == 3 and fields[1] + 1 == index then
      previous = fields[3]
    end
    if n == 3 then
      fields = { index, previous, 0 }
    else
      fields = { index, 0 }
    end
  end
  return fields, rolled
end

local function overrun(extra)
  if kind == 'tb' then
    local tat = tonumber(redis.call('GET', counter) or '0') or 0
    local tokens = math.min(extra, idiv(MAX_DEBT_US, span) + 1)
    tat = math.min(math.max(tat, now) + tokens * span, now + MAX_DEBT_US)
    redis.call('SET', counter, int(tat), 'PX', int(ttl_ms(tat, now, test)))
    return
  end
  local n = kind == 'sw' and 3 or 2
  local fields, rolled = rolled_window(n)
  -- At most 2^53 / window_ms: sliding_window's estimate stays exact.
  local cap = idiv(9007199254740992, idiv(span, 1000))
  fields[n] = math.min(fields[n] + extra, cap)
  write(counter, counter_string(unpack(fields)), rolled, (fields[1] + n - 1) * span, now, test)
end

local function refund(give)
  -- Charged before an admin reset of this counter (reset.lua): the charge
  -- was wiped with the counter, so there is nothing to give back.
  local cleared = tonumber(redis.call('GET', counter .. ':cleared') or '')
  if cleared ~= nil and at < cleared then
    return
  end
  if kind == 'tb' then
    -- The debt drains first-in first-out: only receipt id - now is owed.
    local owed = math.min(give * span, math.max(id - now, 0))
    local tat = math.max((tonumber(redis.call('GET', counter)) or 0) - owed, 0)
    if tat > now then
      redis.call('SET', counter, int(tat), 'PX', int(ttl_ms(tat, now, test)))
    else
      redis.call('DEL', counter)
    end
    return
  end
  local fields = { read_counter(counter, kind == 'sw' and 3 or 2) }
  if #fields == 0 then
    return
  end
  local charged = idiv(at, span)
  local field
  if charged == fields[1] then
    field = #fields
  elseif kind == 'sw' and charged + 1 == fields[1] then
    field = 2
  else
    return
  end
  fields[field] = math.max(fields[field] - give, 0)
  write(counter, counter_string(unpack(fields)), false)
end

if actual > estimate then
  overrun(actual - estimate)
elseif actual < estimate then
  refund(estimate - actual)
end
return { 1, estimate }
