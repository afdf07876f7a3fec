-- reconcile: adds hits the fallback admitted while Redis was away to the
-- counters of the same windows (fixed_window and sliding_window only: their
-- state is a count per window, so adding is exact). A charge whose window
-- no longer counts (fixed_window: not the current one; sliding_window:
-- neither the current nor the previous one) is skipped.
--
-- KEYS[k]        a counter (same layout as its check); one slot per call
-- ARGV[1]        now override in epoch µs, "" in production (see the prelude)
-- ARGV[2+4(k-1)] algorithm of KEYS[k]: "fw" | "sw"
-- ARGV[3+4(k-1)] window in µs
-- ARGV[4+4(k-1)] when the charges were made (epoch µs): their window
-- ARGV[5+4(k-1)] hits to add
-- Returns        how many counters were changed.

local now, test = script_now(ARGV[1])
local changed = 0

for k = 1, #KEYS do
  local key = KEYS[k]
  local base = 2 + 4 * (k - 1)
  local kind = ARGV[base]
  local window = tonumber(ARGV[base + 1])
  local charged = idiv(tonumber(ARGV[base + 2]), window)
  local hits = tonumber(ARGV[base + 3])
  local current = idiv(now, window)
  if kind == 'fw' and charged == current then
    local i, c = read_counter(key, 2)
    if i == nil or i < charged then
      write(key, counter_string(charged, hits), true, (charged + 1) * window, now, test)
    else
      write(key, counter_string(i, c + hits), false)
    end
    changed = changed + 1
  elseif kind == 'sw' and (charged == current or charged + 1 == current) then
    local i, p, c = read_counter(key, 3)
    local expires = (charged + 2) * window
    if i == nil or i + 1 < charged then
      write(key, counter_string(charged, 0, hits), true, expires, now, test)
    elseif i + 1 == charged then
      write(key, counter_string(charged, c, hits), true, expires, now, test)
    elseif i == charged then
      write(key, counter_string(i, p, c + hits), false)
    else
      -- i == charged + 1: the charges are the counter's previous window.
      write(key, counter_string(i, p + hits, c), false)
    end
    changed = changed + 1
  end
end
return changed
