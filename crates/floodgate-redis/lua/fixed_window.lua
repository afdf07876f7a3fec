-- fixed_window: one counter reset at multiples of the window since the Unix
-- epoch (floodgate-core algorithm/fixed_window.rs).
--
-- Key      a string "<i>:<c>": the window index i and its hits (anything
--          else reads as a new counter)
-- Args     hits (0 peeks: allowed iff one hit fits, nothing charged),
--          a = limit, b = window in µs, c unused; or, for a calendar
--          window, b = 0 and c the starts of four consecutive periods
--          around the sidecar's clock ("<s1>,<s2>,<s3>,<s4>", epoch µs):
--          the window is the period holding now, its index its start
-- Returns  allowed, remaining, reset_after_us, retry_after_us, 0 (no
--          receipt id) as if charged, and the commit (nil: nothing to write)
-- Expiry   the end of the current window, set by its first charge.

-- The start and end of the calendar period holding `now` among the
-- starts in `c` (see Args); an error when none holds it (Redis's clock
-- more than a period away from the sidecar's).
local function calendar_period(c, now)
  local starts, n = {}, 0
  for s in string.gmatch(c, '%d+') do
    n = n + 1
    starts[n] = s + 0
  end
  for i = 1, n - 1 do
    if starts[i] <= now and now < starts[i + 1] then
      return starts[i], starts[i + 1]
    end
  end
  error('floodgate check: Redis time ' .. int(now) .. ' is outside the calendar periods sent')
end

local function fixed_window(key, now, test, hits, limit, window, c)
  local s_index, current = read_counter(key, 2)
  local index, ends
  if window == 0 then
    index, ends = calendar_period(c, now)
  else
    index = idiv(now, window)
    ends = (index + 1) * window
  end
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

  local reset_after = ends - now
  local allowed = current + math.max(hits, 1) <= limit
  local commit = nil
  if allowed and hits > 0 then
    current = current + hits
    commit = function()
      write(key, counter_string(s_index, current), rolled, ends, now, test)
    end
  end

  local retry = 0
  if not allowed then
    retry = reset_after
  end
  return allowed, math.max(limit - current, 0), reset_after, retry, 0, commit
end
