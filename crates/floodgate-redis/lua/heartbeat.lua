-- heartbeat: one sidecar says it is alive and learns how many are
-- (`[fallback] instances = "auto"`: the live count divides each limit while
-- Redis is unreachable).
--
-- KEYS[1]  a sorted set: member = instance id, score = when that instance's
--          last heartbeat lapses, in epoch ms
-- ARGV[1]  now override in epoch µs, "" in production (see the prelude)
-- ARGV[2]  this instance's id
-- ARGV[3]  how long a heartbeat counts, in ms
-- Returns  the number of live instances, this one included
-- Expiry   the set lapses with its latest heartbeat: every member's score is
--          at most now + ARGV[3], so nothing outlives the key's TTL

local key = KEYS[1]
local now_ms = idiv(script_now(ARGV[1]), 1000)
local ttl = tonumber(ARGV[3])

redis.call('ZREMRANGEBYSCORE', key, '-inf', now_ms)
redis.call('ZADD', key, now_ms + ttl, ARGV[2])
redis.call('PEXPIRE', key, ttl)
return redis.call('ZCARD', key)
