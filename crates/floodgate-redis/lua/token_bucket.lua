-- token_bucket: GCRA, a sustained limit per window with bursts up to `burst`
-- (floodgate-core algorithm/token_bucket.rs). The state is one timestamp,
-- the theoretical arrival time (TAT).
--
-- Key      a string holding the TAT in epoch µs
-- Args     hits (0 peeks: allowed iff one hit fits, nothing charged),
--          a = burst (the bucket size, reported as the limit),
--          b = emission interval in µs: ceil(window / limit), c unused;
--          flags: the op's flags (+2 decide only: nothing is written; +4
--          the policy settles: debt beyond a full bucket is kept)
-- Returns  allowed, remaining, reset_after_us, retry_after_us, the TAT
--          after the charge (the receipt id; 0 if not charged) as if
--          charged, and the commit (nil: nothing to write)
-- Expiry   when the bucket is full again (the TAT).

local function token_bucket(key, now, test, hits, burst, interval, _, flags)
  local tat = tonumber(redis.call('GET', key) or '0') or 0
  local capacity = burst * interval
  -- A bucket never owes more than it holds: a TAT beyond a full bucket's
  -- debt is an empty bucket. The burst and the interval are part of the
  -- key, so only a clock behind the one that wrote the TAT gets here (the
  -- local store: a reload). Kept at once (not "decide only"), denied or
  -- not, as the local store keeps it: such a check is always denied. A
  -- policy that settles (flags +4) keeps the debt of settled overruns, up
  -- to MAX_DEBT_US (reserve.lua).
  local ceiling = capacity
  if flags % 8 >= 4 then
    ceiling = math.max(capacity, MAX_DEBT_US)
  end
  if tat > now + ceiling then
    tat = now + ceiling
    if flags % 4 < 2 then
      redis.call('SET', key, int(tat), 'PX', int(ttl_ms(tat, now, test)))
    end
  end
  local start = math.max(tat, now)
  local need = math.max(hits, 1)
  -- need * interval is computed only when need <= burst: it stays below 2^53.
  local allowed = need <= burst and start + need * interval - now <= capacity
  local id = 0
  local commit = nil
  if allowed and hits > 0 then
    tat = start + hits * interval
    id = tat
    commit = function()
      redis.call('SET', key, int(tat), 'PX', int(ttl_ms(tat, now, test)))
    end
  end

  local level = math.max(tat, now) - now
  local retry = 0
  if not allowed then
    if need > burst then
      retry = level
    else
      retry = start + need * interval - now - capacity
    end
  end
  local remaining = idiv(capacity - math.min(level, capacity), interval)
  return allowed, remaining, level, retry, id, commit
end
