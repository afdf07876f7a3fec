-- check: decides one or more checks, one after the other; each check's ops
-- all or nothing (docs/api.md). Each op's algorithm decides without writing; if
-- every enforced op of the check is allowed, its allowed ops are charged; if
-- any enforced op is denied, nothing of that check is charged. A check is
-- decided within one call (one per slot on a Cluster), so a denied check
-- never holds quota, not even for the time a refund would take. The store
-- puts concurrent checks into one call (a batch): a check sees every charge
-- of the checks before it.
--
-- KEYS[k]  the counters of every op of every check, in order; keys are
--          distinct within one check (the store sends an op on a key already
--          in that check in a call of its own), and may repeat across checks
-- ARGV     one value per check: its now override in epoch µs ("" in
--          production, see the prelude), "|", then its n ops' specs,
--          ";"-separated, each "<algorithm> <flags> <hits> <a> <b> <c>",
--          space-separated:
--          the algorithm ("sw" | "fw" | "log" | "tb" | "cc"), flags (+1
--          enforced: its denial denies the check, else shadow, reported
--          only; +2 decide only: never charged; +4 the policy settles:
--          "tb" keeps debt beyond a full bucket; +8 a reservation: its
--          record, named by c, is kept with the charge, see reserve.lua),
--          hits, then the algorithm's a, b (integers) and c (a word, may be
--          empty; see each algorithm above); for a policy with a lockout,
--          two more integers: block_for and block_max in µs (block.lua)
-- Returns  one array, one string per check, in order: its 2 + 5n integers,
--          each 8 bytes, signed, little-endian (struct.pack '<i8'): charged
--          0|1, now_us, then five per op: allowed 0|1, remaining,
--          reset_after_us, retry_after_us, receipt id (as each algorithm
--          returns them); charged 1 when the check's allowed ops were
--          charged (those not "decide only"), now_us the check's script
--          time. Or "-1 <message>" when Redis refused one of the check's
--          commands (a key of the wrong type): that check failed, the
--          others of the call stand. (One string per check: a client reads
--          it much faster than 2 + 5n integers, and struct.pack writes them
--          faster than Redis converts integers.)

local ALGORITHMS = {
  sw = sliding_window,
  fw = fixed_window,
  log = sliding_log,
  tb = token_bucket,
  cc = concurrency,
}

-- parse, remembered: memo(parse)(s) parses each distinct s once per call
-- (the checks of one call mostly repeat the same few values: same
-- policies, same hits); a malformed s (nil) is not remembered.
local function memo(parse)
  local parsed = {}
  return function(s)
    local value = parsed[s]
    if value == nil then
      value = parse(s)
      parsed[s] = value
    end
    return value
  end
end

-- An op spec: {algorithm, flags, hits, a, b, c, block_for, block_max}, nil
-- when malformed.
local spec = memo(function(s)
  local name, flags, hits, a, b, c, block_for, block_max =
    string.match(s, '^(%a+) (%d+) (%d+) (%d+) (%d+) (%S*) ?(%d*) ?(%d*)$')
  local algorithm = ALGORITHMS[name]
  if algorithm == nil or (block_for ~= '' and block_max == '') then
    return nil
  end
  -- Digits only: arithmetic converts them (tonumber converts twice).
  local op = { algorithm, flags + 0, hits + 0, a + 0, b + 0, c, 0, 0 }
  if block_for ~= '' then
    op[7], op[8] = block_for + 0, block_max + 0
  end
  return op
end)

-- A check's value ("<now>|<spec>;<spec>;…"): {now, ops}, its now override
-- and the list of its ops; nil when malformed or naming no op.
local parse = memo(function(v)
  local now, s = string.match(v, '^(%d*)|(.*)$')
  if now == nil then
    return nil
  end
  local ops = {}
  for one in string.gmatch(s, '[^;]+') do
    local op = spec(one)
    if op == nil then
      return nil
    end
    ops[#ops + 1] = op
  end
  if #ops == 0 then
    return nil
  end
  return { now, ops }
end)

-- Redis TIME, read once per call however many checks use it.
local server_now = nil

-- Decides one op on `k` at `now`: its algorithm, behind its lockout when
-- the policy has one (block.lua): a blocked key is denied until the block's
-- end; a denial with a cost starts a block, reported as the wait.
local function decide(op, k, now, test)
  if op[7] == 0 then
    return op[1](k, now, test, op[3], op[4], op[5], op[6], op[2])
  end
  local until_us, level, expires = block_read(k)
  if until_us ~= nil and until_us > now then
    return false, 0, until_us - now, until_us - now, 0, nil
  end
  local allowed, remaining, reset_after, retry, id, commit =
    op[1](k, now, test, op[3], op[4], op[5], op[6], op[2])
  if not allowed and op[3] > 0 then
    retry = block_start(k, level, expires, now, test, op[7], op[8]) - now
    reset_after = math.max(reset_after, retry)
  end
  return allowed, remaining, reset_after, retry, id, commit
end

-- The reply (see Returns above), filled check by check.
local reply = {}

-- The values of the check being decided, before they are packed into reply.
local values = {}

-- The first m values packed (see Returns); formats[m] packs m integers,
-- made on first use.
local formats = {}
local function pack(m)
  local format = formats[m]
  if format == nil then
    format = '<' .. string.rep('i8', m)
    formats[m] = format
  end
  return struct.pack(format, unpack(values, 1, m))
end

-- The commits of the check being decided (commits[1..count]).
local commits = {}

-- Decides the check of ARGV[at], whose first key is KEYS[key]; packs its
-- values into reply[at].
local function check(at, key)
  local parsed = parse(ARGV[at])
  local ops = parsed[2]
  local n = #ops
  local now, test
  if parsed[1] == '' then
    if server_now == nil then
      server_now = script_now('')
    end
    now, test = server_now, false
  else
    now, test = script_now(parsed[1])
  end
  values[1], values[2] = 1, now
  local count = 0
  local denied = false
  for i = 1, n do
    local op = ops[i]
    local flags = op[2]
    local allowed, remaining, reset_after, retry, id, commit =
      decide(op, KEYS[key + i - 1], now, test)
    if not allowed and flags % 2 == 1 then
      denied = true
    end
    local v = 5 * i - 2
    values[v], values[v + 1], values[v + 2], values[v + 3], values[v + 4] =
      allowed and 1 or 0, remaining, reset_after, retry, id
    if commit ~= nil and flags % 4 < 2 then
      count = count + 1
      commits[count] = commit
      -- A reservation (+8): its record is kept with the charge.
      if flags >= 8 then
        local record = reservation(KEYS[key + i - 1], op[6], op[3], now, test, id)
        if record ~= nil then
          count = count + 1
          commits[count] = record
        end
      end
    end
  end
  if denied then
    values[1] = 0
  end
  reply[at] = pack(2 + 5 * n)
  if not denied then
    for i = 1, count do
      commits[i]()
    end
  end
end

-- The layout is checked whole before any check runs: a malformed call
-- charges nothing.
local key = 1
for at = 1, #ARGV do
  local parsed = parse(ARGV[at])
  if parsed == nil then
    return redis.error_reply('floodgate check: malformed check at ARGV[' .. at .. ']')
  end
  key = key + #parsed[2]
end
if key - 1 ~= #KEYS then
  return redis.error_reply('floodgate check: ' .. #KEYS .. ' keys for ' .. (key - 1) .. ' ops')
end

key = 1
for at = 1, #ARGV do
  local ok, r = pcall(check, at, key)
  if not ok then
    local message = type(r) == 'table' and (r.err or tostring(r)) or tostring(r)
    -- Redis before 7 puts the script's position before the server's error.
    message = string.gsub(message, '^@user_script:%d+: ', '')
    reply[at] = '-1 ' .. message
  end
  key = key + #parse(ARGV[at])[2]
end
return reply
