-- fixed_window: one counter reset at multiples of the window since the Unix
-- epoch (floodgate-core algorithm/fixed_window.rs).
--
-- Key      a string "<i>:<c>": the window index i and its hits (anything
--          else reads as a new counter)
-- Args     hits (0 peeks: allowed iff one hit fits, nothing charged),
--          a = limit, b = window in µs, c unused
-- Returns  allowed, remaining, reset_after_us, retry_after_us, 0 (no
--          receipt id) as if charged, and the commit (nil: nothing to write)
-- Expiry   the end of the current window, set by its first charge.

local function fixed_window(key, now, test, hits, limit, window)
  local s_index, current = read_counter(key, 2)
  local index = idiv(now, window)
  -- As in sliding_window: only a new window sets the expiry again. Any
  -- stored index but the current one is a window that is over (a later one
  -- was counted by a clock ahead of this one: a failover to a replica whose
  -- clock is behind). The window length is part of the key, so no index of
  -- another length is ever read here.
  local rolled = s_index == nil or index ~= s_index
  s_index, current = s_index or 0, current or 0
  if index ~= s_index then
    s_index = index
    current = 0
  end

  local reset_after = (index + 1) * window - now
  local allowed = current + math.max(hits, 1) <= limit
  local commit = nil
  if allowed and hits > 0 then
    current = current + hits
    commit = function()
      write(key, counter_string(s_index, current), rolled,
        (s_index + 1) * window, now, test)
    end
  end

  local retry = 0
  if not allowed then
    retry = reset_after
  end
  return allowed, math.max(limit - current, 0), reset_after, retry, 0, commit
end
