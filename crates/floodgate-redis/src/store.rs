//! [`RedisStore`]: the [`Store`] whose counters live in Redis.
//!
//! One check = one `EVALSHA` of the check script deciding every policy of
//! the check all or nothing (on a Cluster, one call per slot involved,
//! pipelined and answered in one round trip per node: fred routes each call
//! by its keys' slot and follows `MOVED` and `ASK`). Elsewhere a check that
//! is one call goes through the [`Batcher`], which sends concurrent checks
//! as one `EVALSHA`. A call answered `NOSCRIPT` (after `SCRIPT FLUSH`, a
//! restart or a failover) is sent again at once with `EVAL` and the full
//! script, which also caches it, while
//! `SCRIPT LOAD` reloads every script on every primary: no check fails
//! because a script went missing.

use std::mem;
use std::time::Duration;

use async_trait::async_trait;
use floodgate_core::{AlgorithmKind, Outcome, Policy};
use floodgate_store::{
    Clear, Reconcile, Refund, Settle, Settled, Source, Store, StoreError, StoreOp, StoreOutcome,
};
use fred::error::Error as FredError;
use fred::interfaces::{ClientLike, ClusterInterface};
use fred::types::Value;
use fred::util::redis_keyslot;
use smallvec::{smallvec, SmallVec};
use tokio::time::{timeout_at, Instant};

use crate::batch::Batcher;
use crate::config::target;
use crate::error::store_error;
use crate::key::redis_key;
use crate::reconcile::reconcile_calls;
use crate::release;
use crate::script::{
    check_calls, heartbeat_call, read_heartbeat, read_settled, refund_call, reset_call,
    settle_call, split_value, Call, CheckReply,
};
use crate::{Error, RedisConfig, RedisTopology};

mod connect;
mod link;
#[cfg(test)]
mod tests;

pub(crate) use link::Link;

/// The shortest time one reconcile pass may take (see
/// [`RedisStore`]'s `reconcile`): 10 × `timeout`, at least this.
const RECONCILE_MIN_TIME: Duration = Duration::from_millis(200);

/// Counters in a shared Redis. Cheap to share: wrap it in an `Arc`.
pub struct RedisStore {
    /// The connections and how calls are made on them.
    link: Link,
    /// Puts concurrent checks into one call; `None` on a Cluster, where
    /// each call goes to the node of its slot.
    batcher: Option<Batcher>,
    /// Prefix of every key.
    prefix: String,
    /// A Redis Cluster: a probe must also see `cluster_state:ok`, since
    /// nodes answer PING while the cluster refuses keyed commands
    /// (CLUSTERDOWN), and a PING-only probe would close the breaker too soon.
    clustered: bool,
    /// This store's name among the sidecars sharing Redis, for
    /// [`RedisStore::heartbeat`]: random, so restarts count as new.
    instance_id: String,
    /// The test-only script clock; `None` uses Redis `TIME`.
    #[cfg(feature = "test-clock")]
    clock: Option<std::sync::Arc<dyn floodgate_core::Clock>>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("timeout", &self.link.timeout)
            .field("pool_size", &self.link.pool.size())
            .finish()
    }
}

impl RedisStore {
    /// Connects to Redis as `config` says and loads the scripts.
    ///
    /// Once connected, the store reconnects by itself (with backoff) after
    /// any connection loss; calls made meanwhile fail within `timeout`.
    ///
    /// # Errors
    /// [`Error::Config`] for invalid settings, [`Error::Tls`] for TLS setup
    /// or handshake failures, [`Error::Auth`] when Redis refuses the
    /// credentials or the ACL user may not run the scripts, and
    /// [`Error::Unreachable`] when Redis cannot be reached (transient: the
    /// caller may retry or start in fallback).
    pub async fn connect(config: &RedisConfig) -> Result<RedisStore, Error> {
        let target = target(config);
        let pool = connect::build_pool(config, &target)?;
        let connect_timeout = connect::connect_timeout(config);
        connect::open(&pool, &target, connect_timeout).await?;
        let store = RedisStore::over(Link::new(pool, config.timeout), config);
        if let Err(e) = store.link.prepare(&target, connect_timeout).await {
            let _ = store.link.pool.quit().await;
            return Err(e);
        }
        Ok(store)
    }

    /// The store over `link`, connected as `config` says: a batcher unless
    /// on a Cluster, and a fresh random instance id.
    fn over(link: Link, config: &RedisConfig) -> RedisStore {
        let clustered = matches!(config.topology, RedisTopology::Cluster(_));
        RedisStore {
            batcher: (!clustered).then(|| Batcher::start(link.clone(), config.pool_size)),
            link,
            prefix: config.key_prefix.clone(),
            clustered,
            instance_id: format!("{:016x}", rand::random::<u64>()),
            #[cfg(feature = "test-clock")]
            clock: None,
        }
    }

    /// Makes the scripts read "now" from `clock` instead of Redis `TIME`.
    /// Test builds only (cargo feature `test-clock`): it is what lets the
    /// conformance suite compare this store with the local one exactly.
    #[cfg(feature = "test-clock")]
    pub fn with_test_clock(mut self, clock: std::sync::Arc<dyn floodgate_core::Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The script time argument: "" (Redis `TIME`) unless a test clock is set.
    fn now_arg(&self) -> String {
        #[cfg(feature = "test-clock")]
        if let Some(clock) = &self.clock {
            return clock.now_us().to_string();
        }
        String::new()
    }

    /// The Redis key holding the counter `counter_key` of `policy`:
    /// `<prefix>:{<counter key>}:<algorithm>[:<shape>]` (see
    /// [`crate::redis_key`]).
    pub fn redis_key(&self, policy: &Policy, counter_key: &str) -> String {
        redis_key(&self.prefix, counter_key, policy)
    }

    /// Checks that Redis answers, within the timeout (the failover store
    /// probes with it). On a Cluster it also requires `cluster_state:ok`.
    ///
    /// # Errors
    /// [`StoreError::Timeout`] or [`StoreError::Unavailable`] when Redis does
    /// not answer.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let deadline = Instant::now() + self.link.timeout;
        let client = self
            .link
            .pool
            .next_connected()
            .with_options(&self.link.options);
        let probe = async {
            Box::pin(client.ping::<Value>(None)).await?;
            if self.clustered {
                let info: String = Box::pin(client.cluster_info()).await?;
                if !info.contains("cluster_state:ok") {
                    return Err(FredError::new(
                        fred::error::ErrorKind::Cluster,
                        "CLUSTERDOWN: cluster_state is not ok",
                    ));
                }
            }
            Ok(())
        };
        match timeout_at(deadline, probe).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(store_error(&e)),
            Err(_) => Err(StoreError::Timeout),
        }
    }

    /// Records that this sidecar is alive for `ttl` and returns how many
    /// sidecars are (this one included): a sorted set under
    /// `<prefix>:{hb}:instances`, one member per live store, pruned by the
    /// script with Redis's clock. Within `timeout` like every call.
    ///
    /// # Errors
    /// [`StoreError`] when Redis does not answer or the reply is not a count.
    pub async fn heartbeat(&self, ttl: Duration) -> Result<u64, StoreError> {
        let call = heartbeat_call(&self.prefix, &self.instance_id, ttl, &self.now_arg());
        read_heartbeat(self.link.run(&[&call]).await?.pop())
    }

    /// Closes every connection; later calls fail. Dropping the store does
    /// the same in the background.
    pub async fn quit(&self) {
        let _ = self.link.pool.quit().await;
    }
}

impl Drop for RedisStore {
    /// fred's connection tasks outlive their handles: stop them, or a
    /// dropped store (a reload that replaced it) would keep its connections
    /// and reconnect forever.
    fn drop(&mut self) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let pool = self.link.pool.clone();
            runtime.spawn(async move {
                let _ = pool.quit().await;
            });
        }
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn check(&self, ops: &[StoreOp<'_>]) -> Result<Vec<StoreOutcome>, StoreError> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.now_arg();
        let slot_of = self.clustered.then_some(redis_keyslot as fn(&[u8]) -> u16);
        let mut calls = check_calls(&self.prefix, ops, &now, slot_of);
        let replies: SmallVec<[CheckReply; 1]> = match (&self.batcher, calls.as_mut_slice()) {
            (Some(batcher), [only]) => {
                let deadline = Instant::now() + self.link.timeout;
                let (keys, args) = (
                    mem::take(&mut only.call.keys),
                    mem::take(&mut only.call.args),
                );
                smallvec![batcher.check(keys, args, deadline).await]
            }
            _ => {
                // Boxed: fred's futures are kilobytes; inline, every check's
                // future would be that large (and moved at each boxing).
                let calls: Vec<&Call> = calls.iter().map(|c| &c.call).collect();
                let replies = Box::pin(self.link.run(&calls)).await?;
                let mut each = SmallVec::with_capacity(replies.len());
                for reply in replies {
                    each.extend(split_value(reply, 1)?);
                }
                each
            }
        };
        let mut outcomes: SmallVec<[Option<Outcome>; 4]> = smallvec![None; ops.len()];
        for (call, reply) in calls.iter().zip(replies) {
            call.read(&reply?, &mut outcomes)?;
        }
        outcomes
            .into_iter()
            .map(|o| {
                let outcome = o.ok_or_else(|| StoreError::Protocol("an op had no reply".into()))?;
                Ok(StoreOutcome {
                    outcome,
                    source: Source::Redis,
                })
            })
            .collect()
    }

    async fn refund(&self, refunds: &[Refund<'_>]) -> Result<(), StoreError> {
        if refunds.is_empty() {
            return Ok(());
        }
        let now = self.now_arg();
        // Lease releases: one ZREM per counter; other refunds: the script.
        let calls: Vec<Call> = refunds
            .iter()
            .filter(|r| r.policy.kind() != AlgorithmKind::Concurrency)
            .map(|r| refund_call(&self.prefix, r, &now))
            .collect();
        let zrems = release::group(&self.prefix, refunds);
        let scripts = async {
            if calls.is_empty() {
                return Ok(());
            }
            Box::pin(self.link.run(&calls.iter().collect::<Vec<_>>()))
                .await
                .map(drop)
        };
        let (scripts, leases) = tokio::join!(scripts, self.link.zrem(&zrems));
        scripts.and(leases)
    }

    /// One `settle.lua` call per reservation, all in one pipeline (one
    /// round trip); each call is atomic on its counter's slot.
    async fn settle(&self, settles: &[Settle<'_>]) -> Result<Vec<Settled>, StoreError> {
        if settles.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.now_arg();
        let calls: Vec<Call> = settles
            .iter()
            .map(|s| settle_call(&self.prefix, s, &now))
            .collect();
        let replies = Box::pin(self.link.run(&calls.iter().collect::<Vec<_>>())).await?;
        replies.iter().map(read_settled).collect()
    }

    /// One `reset.lua` call per counter: its keys share its hash tag, so
    /// each call stays in one Cluster slot.
    async fn clear(&self, clears: &[Clear<'_>]) -> Result<(), StoreError> {
        if clears.is_empty() {
            return Ok(());
        }
        let now = self.now_arg();
        let calls: Vec<Call> = clears
            .iter()
            .map(|c| reset_call(&self.prefix, c.key, c.policy, &now))
            .collect();
        let replies = Box::pin(self.link.run(&calls.iter().collect::<Vec<_>>())).await?;
        match replies.iter().find(|r| !matches!(r, Value::Integer(_))) {
            Some(reply) => Err(StoreError::Protocol(format!(
                "unexpected reset reply {reply:?}"
            ))),
            None => Ok(()),
        }
    }

    async fn reconcile(&self, charges: &[Reconcile]) -> Result<(), StoreError> {
        let calls = reconcile_calls(&self.prefix, charges, &self.now_arg(), self.clustered);
        if calls.is_empty() {
            return Ok(());
        }
        // One pipeline, bounded in time: longer than a check's timeout (it
        // may be thousands of counters), never unbounded.
        let deadline = Instant::now() + (self.link.timeout() * 10).max(RECONCILE_MIN_TIME);
        let calls: Vec<&Call> = calls.iter().collect();
        Box::pin(self.link.run_by(&calls, deadline)).await?;
        Ok(())
    }

    fn mode(&self) -> Source {
        Source::Redis
    }

    async fn ping(&self) -> Result<(), StoreError> {
        RedisStore::ping(self).await
    }
}
