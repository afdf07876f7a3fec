-- check: decides one or more checks, one after the other; each check's ops
-- all or nothing (SPEC §1). Each op's algorithm decides without writing; if
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
-- ARGV     per check: its now override in epoch µs ("" in production, see
--          the prelude), its number of ops n, then one value per op, its
--          spec: "<algorithm> <flags> <hits> <a> <b> <c>", space-separated:
--          the algorithm ("sw" | "fw" | "log" | "tb" | "cc"), flags (+1
--          enforced: its denial denies the check, else shadow, reported
--          only; +2 decide only: never charged), hits, then the algorithm's
--          a, b (integers) and c (a word, may be empty; see each algorithm
--          above)
-- Returns  one reply per check, in order: {charged 0|1, now_us, then five
--          integers per op: allowed 0|1, remaining, reset_after_us,
--          retry_after_us, receipt id (as each algorithm returns them)},
--          charged 1 when the check's allowed ops were charged (those not
--          "decide only"), now_us the check's script time; or {-1, message}
--          when Redis refused one of the check's commands (a key of the
--          wrong type): that check failed, the others of the call stand

local ALGORITHMS = {
  sw = sliding_window,
  fw = fixed_window,
  log = sliding_log,
  tb = token_bucket,
  cc = concurrency,
}

-- Op specs, parsed once per distinct string in a call (the checks of one
-- call mostly repeat the same few: same policies, same hits): specs[s] is
-- {algorithm, flags, hits, a, b, c}, or nil for a malformed spec.
local specs = setmetatable({}, { __index = function(parsed, spec)
  local name, flags, hits, a, b, c =
    string.match(spec, '^(%a+) (%d+) (%d+) (%d+) (%d+) (%S*)$')
  local algorithm = ALGORITHMS[name]
  if algorithm == nil then
    return nil
  end
  local op = { algorithm, tonumber(flags), tonumber(hits), tonumber(a), tonumber(b), c }
  parsed[spec] = op
  return op
end })

-- Redis TIME, read once per call however many checks use it.
local server_now = nil

-- Decides the check whose ARGV starts at `at` and whose first key is
-- KEYS[key]; returns its reply.
local function check(at, key, n)
  local now, test
  if ARGV[at] == '' then
    if server_now == nil then
      server_now = script_now('')
    end
    now, test = server_now, false
  else
    now, test = script_now(ARGV[at])
  end
  local out = { 1, now }
  local commits = {}
  local denied = false
  for i = 1, n do
    local op = specs[ARGV[at + 1 + i]]
    local flags = op[2]
    local allowed, remaining, reset_after, retry, id, commit =
      op[1](KEYS[key + i - 1], now, test, op[3], op[4], op[5], op[6])
    if not allowed and flags % 2 == 1 then
      denied = true
    end
    local o = 5 * i - 2
    out[o], out[o + 1], out[o + 2], out[o + 3], out[o + 4] =
      allowed and 1 or 0, remaining, reset_after, retry, id
    if flags < 2 then
      commits[#commits + 1] = commit
    end
  end
  if denied then
    out[1] = 0
  else
    for _, commit in ipairs(commits) do
      commit()
    end
  end
  return out
end

-- The layout is checked whole before any check runs: a malformed call
-- charges nothing.
local at, key = 1, 1
while at <= #ARGV do
  local n = tonumber(ARGV[at + 1])
  if n == nil or n < 1 or at + 1 + n > #ARGV or key + n - 1 > #KEYS then
    return redis.error_reply('floodgate check: malformed arguments at ARGV[' .. at .. ']')
  end
  for i = at + 2, at + 1 + n do
    if specs[ARGV[i]] == nil then
      return redis.error_reply('floodgate check: malformed op at ARGV[' .. i .. ']')
    end
  end
  at = at + 2 + n
  key = key + n
end
if key - 1 ~= #KEYS then
  return redis.error_reply('floodgate check: ' .. #KEYS .. ' keys for ' .. (key - 1) .. ' ops')
end

local replies = {}
at, key = 1, 1
while at <= #ARGV do
  local n = tonumber(ARGV[at + 1])
  local ok, r = pcall(check, at, key, n)
  if ok then
    replies[#replies + 1] = r
  else
    local message = type(r) == 'table' and (r.err or tostring(r)) or tostring(r)
    -- Redis before 7 puts the script's position before the server's error.
    message = string.gsub(message, '^@user_script:%d+: ', '')
    replies[#replies + 1] = { -1, message }
  end
  at = at + 2 + n
  key = key + n
end
return replies
