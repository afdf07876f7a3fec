//! The shared queue of waiting checks in Redis: one sorted set per
//! counter, `<counter's Redis key>:q` (same hash tag, so the same Cluster
//! slot), member `<expiry ms>:<random id>`, scored by its arrival (Redis
//! `TIME`, µs). Arrival order is the order of the `join`s as Redis ran
//! them, whichever sidecar sent them. Lapsed tickets (a sidecar that died
//! with checks waiting) are dropped by the next `join` and by `rank` when
//! they reach the head. `leave` publishes on the wake channel so every
//! sidecar's waiters re-read their rank.

use std::time::Duration;

use async_trait::async_trait;
use floodgate_core::Policy;
use floodgate_store::{SharedQueue, StoreError};
use fred::clients::Client;
use fred::interfaces::LuaInterface;
use fred::types::Value;

use crate::error::store_error;
use crate::key::redis_key;

/// Prunes lapsed tickets at the head of KEYS[1]; shared by the scripts.
/// Defines `now_us` and `now_ms` (Redis `TIME`).
const PRUNE_HEAD: &str = r"
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now_ms = math.floor(now_us / 1000)
while true do
  local head = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
  if not head then break end
  local exp = tonumber(string.match(head, '^(%d+):'))
  if exp ~= nil and exp >= now_ms then break end
  redis.call('ZREM', KEYS[1], head)
end
";

/// KEYS[1] the queue; ARGV[1] a random id, ARGV[2] the ticket's lifetime
/// in ms, ARGV[3] most tickets. The ticket, or false when full.
const JOIN: &str = r"
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
for _, m in ipairs(members) do
  local exp = tonumber(string.match(m, '^(%d+):'))
  if exp == nil or exp < now_ms then redis.call('ZREM', KEYS[1], m) end
end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return false end
local member = string.format('%d:%s', now_ms + tonumber(ARGV[2]), ARGV[1])
redis.call('ZADD', KEYS[1], now_us, member)
local ttl = tonumber(ARGV[2]) + 1000
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return member
";

/// KEYS[1] the queue; ARGV[1] the ticket. Its rank, -1 when gone.
const RANK: &str = r"
local r = redis.call('ZRANK', KEYS[1], ARGV[1])
if r then return r end
return -1
";

/// KEYS[1] the queue. Tickets waiting.
const LEN: &str = r"
return redis.call('ZCARD', KEYS[1])
";

/// KEYS[1] the queue; ARGV[1] the ticket, ARGV[2] the wake channel,
/// ARGV[3] the counter key. Removes it and wakes every sidecar.
const LEAVE: &str = r"
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  redis.call('PUBLISH', ARGV[2], ARGV[3])
end
return 1
";

/// The Redis queue of waiting checks.
pub struct RedisQueue {
    /// A connection of its own (the wake channel's publisher).
    client: Client,
    /// `key_prefix`.
    prefix: String,
    /// The wake channel.
    channel: String,
    /// Each call's timeout.
    timeout: Duration,
}

impl RedisQueue {
    /// The queue over `client`.
    pub(crate) fn new(client: Client, prefix: &str, channel: String, timeout: Duration) -> Self {
        RedisQueue {
            client,
            prefix: prefix.to_string(),
            channel,
            timeout,
        }
    }

    fn key(&self, policy: &Policy, key: &str) -> String {
        format!("{}:q", redis_key(&self.prefix, key, policy))
    }

    async fn eval(&self, body: &str, key: String, args: Vec<Value>) -> Result<Value, StoreError> {
        let script = format!("{PRUNE_HEAD}{body}");
        let call = self.client.eval::<Value, _, _, _>(script, key, args);
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(store_error(&e)),
            Err(_) => Err(StoreError::Timeout),
        }
    }
}

#[async_trait]
impl SharedQueue for RedisQueue {
    async fn len(&self, policy: &Policy, key: &str) -> Result<u64, StoreError> {
        let value = self.eval(LEN, self.key(policy, key), Vec::new()).await?;
        Ok(value.as_u64().unwrap_or(0))
    }

    async fn join(
        &self,
        policy: &Policy,
        key: &str,
        ttl: Duration,
        max_waiting: u32,
    ) -> Result<Option<String>, StoreError> {
        let id = format!("{:016x}", rand::random::<u64>());
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let args = vec![
            Value::from(id),
            Value::from(ttl_ms.to_string()),
            Value::from(max_waiting.to_string()),
        ];
        let value = self.eval(JOIN, self.key(policy, key), args).await?;
        Ok(value.as_string())
    }

    async fn rank(
        &self,
        policy: &Policy,
        key: &str,
        ticket: &str,
    ) -> Result<Option<u64>, StoreError> {
        let args = vec![Value::from(ticket)];
        let value = self.eval(RANK, self.key(policy, key), args).await?;
        match value.as_i64() {
            Some(rank) if rank >= 0 => Ok(Some(rank as u64)),
            Some(_) => Ok(None),
            None => Err(StoreError::Protocol(format!("rank answered {value:?}"))),
        }
    }

    fn leave(&self, policy: &Policy, key: &str, ticket: String) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return; // The ticket lapses by itself.
        };
        let (client, queue, timeout) = (self.client.clone(), self.key(policy, key), self.timeout);
        let args = vec![
            Value::from(ticket),
            Value::from(self.channel.as_str()),
            Value::from(key),
        ];
        runtime.spawn(async move {
            let call = client.eval::<Value, _, _, _>(LEAVE, queue, args);
            if let Ok(Err(error)) = tokio::time::timeout(timeout, call).await {
                tracing::debug!(%error, "wait ticket not removed: it lapses");
            }
        });
    }
}
