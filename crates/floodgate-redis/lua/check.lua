-- check: decides every op of one check, all or nothing (SPEC §1). Each op's
-- algorithm decides without writing; if every enforced op is allowed, the
-- allowed ops are charged; if any enforced op is denied, nothing is charged.
-- One call per check (per slot on a Cluster), so a denied check never holds
-- quota, not even for the time a refund would take.
--
-- KEYS[i]  the counter of op i; keys are distinct (the store sends an op on
--          a key already in the call in a call of its own)
-- ARGV[1]  now override in epoch µs, "" in production (see the prelude)
-- ARGV[2 + 6(i-1) …] op i, six values: the algorithm ("sw" | "fw" | "log" |
--          "tb" | "cc"), flags (+1 enforced: its denial denies the check,
--          else shadow, reported only; +2 decide only: never charged), hits,
--          then the algorithm's a, b, c (see each algorithm above)
-- Returns  {charged 0|1, reply of op 1, …, reply of op n}: charged is 1 when
--          the allowed ops were charged (those not "decide only"); each reply
--          as its algorithm says

local ALGORITHMS = {
  sw = sliding_window,
  fw = fixed_window,
  log = sliding_log,
  tb = token_bucket,
  cc = concurrency,
}

local now, test = script_now(ARGV[1])
local out = { 1 }
local commits = {}
local denied = false
for i = 1, #KEYS do
  local at = 2 + 6 * (i - 1)
  local algorithm = ALGORITHMS[ARGV[at]]
  if algorithm == nil then
    return redis.error_reply('floodgate check: unknown algorithm ' .. tostring(ARGV[at]))
  end
  local flags = tonumber(ARGV[at + 1])
  local r, commit = algorithm(KEYS[i], now, test, tonumber(ARGV[at + 2]),
    tonumber(ARGV[at + 3]), tonumber(ARGV[at + 4]), ARGV[at + 5])
  if r[1] == 0 and flags % 2 == 1 then
    denied = true
  end
  out[i + 1] = r
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
