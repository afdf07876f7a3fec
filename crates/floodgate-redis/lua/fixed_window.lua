-- fixed_window: one counter reset at multiples of the window since the Unix
-- epoch (floodgate-core algorithm/fixed_window.rs).
--
-- Key      a hash {i = window index, c = hits in window i}
-- Args     hits (0 peeks: allowed iff one hit fits, nothing charged),
--          a = limit, b = window in µs, c unused
-- Returns  {allowed 0|1, limit, remaining, reset_after_us, retry_after_us,
--          now_us, 0} as if charged, and the commit (nil: nothing to write)
-- Expiry   the end of the current window, set by its first charge.

local function fixed_window(key, now, test, hits, limit, window)
  local state = redis.call('HMGET', key, 'i', 'c')
  local index = idiv(now, window)
  local s_index = tonumber(state[1]) or 0
  local current = tonumber(state[2]) or 0
  -- As in sliding_window: only a new window sets the expiry again.
  local rolled = state[1] == false or index > s_index
  if index > s_index then
    s_index = index
    current = 0
  end

  local reset_after = (index + 1) * window - now
  local allowed = current + math.max(hits, 1) <= limit
  local commit = nil
  if allowed and hits > 0 then
    current = current + hits
    commit = function()
      redis.call('HSET', key, 'i', int(s_index), 'c', int(current))
      if rolled then
        expire_at(key, (s_index + 1) * window, now, test)
      end
    end
  end

  local retry = 0
  if not allowed then
    retry = reset_after
  end
  return reply(allowed, limit, math.max(limit - current, 0), reset_after, retry, now, 0), commit
end
