-- sliding_window: the two-counter weighted estimate (floodgate-core
-- algorithm/sliding_window.rs, line for line).
--
-- Key      a string "<i>:<p>:<c>": the window index i, the hits of window
--          i-1 and of window i (anything else reads as a new counter)
-- Args     hits (0 peeks: allowed iff one hit fits, nothing charged),
--          a = limit, b = window in µs (a whole number of ms), c unused
-- Returns  allowed, remaining, reset_after_us, retry_after_us, 0 (no
--          receipt id) as if charged, and the commit (nil: nothing to write)
-- Expiry   the end of the window after the current one (2 windows at most),
--          set by the first charge in each window.

-- The largest weight (ms) at which floor(prev·w/window_ms) <= room.
local function max_weight_ms(prev, room, window_ms)
  if prev == 0 then
    return window_ms
  end
  return math.min(cdiv((room + 1) * window_ms, prev) - 1, window_ms)
end

local function sliding_window(key, now, test, hits, limit, window)
  local window_ms = idiv(window, 1000)
  local s_index, previous, current = read_counter(key, 3)
  local index = idiv(now, window)
  -- A counter already in this window has its expiry set (by the write that
  -- moved it here, to the same instant): only a new window sets it again.
  -- Any stored index but the current one is a window that is over, weighed
  -- in only as the window right before this one (a later index was counted
  -- by a clock ahead of this one: a new window). The window length is part
  -- of the key, so no index of another length is ever read here.
  local rolled = s_index == nil or index ~= s_index
  s_index, previous, current = s_index or 0, previous or 0, current or 0
  if index ~= s_index then
    if index == s_index + 1 then
      previous = current
    else
      previous = 0
    end
    current = 0
    s_index = index
  end

  local weight_us = (index + 1) * window - now
  local used = idiv(previous * cdiv(weight_us, 1000), window_ms) + current
  local need = math.max(hits, 1)
  local allowed = used + need <= limit
  local used_after = used
  local commit = nil
  if allowed and hits > 0 then
    current = current + hits
    used_after = used_after + hits
    commit = function()
      write(key, counter_string(s_index, previous, current), rolled,
        (s_index + 2) * window, now, test)
    end
  end

  local retry = 0
  if not allowed then
    if need > limit then
      retry = weight_us
    elseif current <= limit - need then
      local w = max_weight_ms(previous, limit - need - current, window_ms) * 1000
      retry = math.max(weight_us - w, 1)
    else
      local w = max_weight_ms(current, limit - need, window_ms) * 1000
      retry = weight_us + (window - w)
    end
  end

  return allowed, math.max(limit - used_after, 0), weight_us, retry, 0, commit
end
