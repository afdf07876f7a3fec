-- sliding_log: exact, no more than `limit` admitted hits in any interval
-- (t - window, t] (floodgate-core algorithm/sliding_log.rs).
--
-- Key      a sorted set, one member per admitted hit, scored by the time it
--          was admitted (epoch µs); members "<nonce>:<i>" are unique across
--          sidecars. Entries that stopped counting are pruned on every call.
-- Args     hits (0 peeks: allowed iff one hit fits, nothing charged),
--          a = limit (at most 10 000), b = window in µs, c = nonce naming
--          this check's members (a random u64, decimal)
-- Returns  allowed, remaining, reset_after_us, retry_after_us, 0 (no
--          receipt id) as if charged, and the commit (nil: nothing to write)
-- Expiry   when the newest entry stops counting (newest + window).

local function sliding_log(key, now, test, hits, limit, window, nonce)
  -- An entry admitted at t stops counting at t + window.
  redis.call('ZREMRANGEBYSCORE', key, '-inf', int(now - window))
  local used = redis.call('ZCARD', key)
  local need = math.max(hits, 1)
  local allowed = used + need <= limit

  -- The score of the entry at `rank` (0 = oldest), as a number.
  local function score_at(rank)
    local entry = redis.call('ZRANGE', key, int(rank), int(rank), 'WITHSCORES')
    return tonumber(entry[2])
  end

  local len = used
  local reset_after = 0
  local commit = nil
  if allowed and hits > 0 then
    len = used + hits
    -- The charge's entries are the newest: they lapse a window from now.
    reset_after = window
    commit = function()
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
      expire_at(key, now + window, now, test)
    end
  elseif len > 0 then
    reset_after = score_at(-1) + window - now
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
  return allowed, math.max(limit - len, 0), reset_after, retry, 0, commit
end
