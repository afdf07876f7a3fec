-- concurrency: at most `limit` slots in flight (floodgate-core
-- algorithm/concurrency.rs). An allowed check holds a lease of `hits` slots
-- until it is released (refund.lua) or its timeout passes.
--
-- Key      a sorted set of members "<lease id>:<slots>" scored by the
--          lease's expiry (epoch µs); expired leases are pruned on every call
-- Args     hits: slots to hold (0 peeks: allowed iff one slot is free,
--          nothing held), a = limit, b = lease timeout in µs, c = the new
--          lease's id (a random u64, decimal): the receipt id
-- Returns  allowed, remaining, reset_after_us, retry_after_us, 0 (the
--          caller knows the lease id it sent) as if charged, and the commit
--          (nil: nothing to write)
-- Expiry   when the latest lease lapses.

local function concurrency(key, now, test, hits, limit, timeout, id)
  -- A lease counts while its expiry is after now.
  redis.call('ZREMRANGEBYSCORE', key, '-inf', int(now))
  local leases = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
  local used = 0
  for i = 1, #leases, 2 do
    used = used + tonumber(string.match(leases[i], ':(%d+)$'))
  end
  local need = math.max(hits, 1)
  local allowed = used + need <= limit
  local held = used
  local charged = allowed and hits > 0
  if charged then
    leases[#leases + 1] = id .. ':' .. int(hits)
    leases[#leases + 1] = now + timeout
    held = used + hits
  end

  local first, last = nil, nil
  for i = 2, #leases, 2 do
    local expires = tonumber(leases[i])
    if first == nil or expires < first then first = expires end
    if last == nil or expires > last then last = expires end
  end
  local reset_after = 0
  if first ~= nil then
    reset_after = first - now
  end
  local commit = nil
  if charged then
    commit = function()
      redis.call('ZADD', key, int(now + timeout), id .. ':' .. int(hits))
      expire_at(key, last, now, test)
    end
  end

  local retry = 0
  if not allowed then
    -- When enough leases will have lapsed for `need` slots, oldest first.
    local must_free = math.max(held + need - limit, 0)
    local freed = 0
    retry = math.max((last or (now + 1)) - now, 1)
    for i = 1, #leases, 2 do
      freed = freed + tonumber(string.match(leases[i], ':(%d+)$'))
      if freed >= must_free then
        retry = math.max(tonumber(leases[i + 1]) - now, 1)
        break
      end
    end
  end
  return allowed, math.max(limit - held, 0), reset_after, retry, 0, commit
end
