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
use floodgate_core::{AlgorithmKind, Policy};
use floodgate_store::{
    Clear, Reconcile, Refund, Settle, Settled, Source, Store, StoreError, StoreOp, StoreOutcome,
};
use fred::clients::{Pipeline, Pool};
use fred::error::Error as FredError;
use fred::interfaces::{ClientLike, ClusterInterface, LuaInterface};
use fred::types::config::{Options, PerformanceConfig, ReconnectPolicy};
use fred::types::{Builder, ClusterHash, CustomCommand, Value};
use fred::util::redis_keyslot;
use tokio::time::{timeout_at, Instant};

use crate::batch::{split, Batcher};
use crate::config::{target, to_fred};
use crate::error::{is_noscript, store_error, MIN_REDIS_VERSION};
use crate::key::redis_key;
use crate::liveness::{keepalive, unresponsive_after, MAX_QUEUED_COMMANDS};
use crate::reconcile::reconcile_calls;
use crate::release;
use crate::script::{
    check_calls, read_settled, refund_call, reset_call, settle_call, Call, SCRIPTS,
};
use crate::{Error, RedisConfig, RedisTopology};

/// Shortest time allowed for opening a connection (TCP, TLS, AUTH), whatever
/// the per-call timeout: a handshake takes several round trips.
const MIN_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Cluster redirections (MOVED, ASK) one call may follow.
const MAX_REDIRECTIONS: u32 = 3;

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

/// The connections of a store and how every call is made on them; cheap to
/// clone (the batcher and its drain tasks hold one).
#[derive(Clone)]
pub(crate) struct Link {
    /// Connections, each pipelining the commands sent to it.
    pub(crate) pool: Pool,
    /// Longest time one store call may take.
    pub(crate) timeout: Duration,
    /// Options of every call: fail fast. A call fails at once while its
    /// connection is known to be down, and a call cut off mid-flight by a
    /// dropped connection fails instead of being re-sent after reconnecting
    /// (see the crate docs for the one gap fred leaves). No fred timeout:
    /// every call with these options runs under our own deadline.
    pub(crate) options: Options,
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
        let fred_config = to_fred(config)?;
        let target = target(config);
        let connect_timeout = config.timeout.max(MIN_CONNECT_TIMEOUT);
        let pool = Builder::from_config(fred_config)
            .with_performance_config(|p: &mut PerformanceConfig| {
                p.default_command_timeout = config.timeout;
            })
            .with_connection_config(|c| {
                c.connection_timeout = connect_timeout;
                c.internal_command_timeout = connect_timeout;
                // Every redirection (MOVED, ASK) costs a write attempt, and
                // fred 10.1 ends its routing task for good when an ASK finds
                // no attempt left: keep attempts > redirections so a command
                // fails ("Too many redirections") before that can happen.
                // (Calls are fail-fast, so attempts never re-send a call after
                // a dropped connection.)
                c.max_redirections = MAX_REDIRECTIONS;
                c.max_command_attempts = MAX_REDIRECTIONS + 1;
                // fred writes each EVALSHA of a pipeline separately: without
                // TCP_NODELAY, Nagle holds the 2nd until the 1st is acked,
                // turning one round trip per check into two.
                c.tcp.nodelay = Some(true);
                c.tcp.keepalive = Some(keepalive(config.timeout));
                let unresponsive = unresponsive_after(config.timeout);
                c.unresponsive.max_timeout = Some(unresponsive);
                c.unresponsive.interval = (unresponsive / 4).max(Duration::from_millis(10));
                c.max_command_buffer_len = MAX_QUEUED_COMMANDS;
            })
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2))
            .build_pool(config.pool_size)
            .map_err(|e| Error::connecting(target.clone(), &e))?;
        let init = tokio::time::timeout(connect_timeout * 2, Box::pin(pool.init())).await;
        match init {
            Ok(Ok(_task)) => {}
            Ok(Err(e)) => return Err(Error::connecting(target, &e)),
            Err(_) => {
                let _ = pool.quit().await;
                return Err(Error::Unreachable {
                    target,
                    reason: format!("no connection within {connect_timeout:?}"),
                });
            }
        }
        let link = Link {
            pool,
            timeout: config.timeout,
            options: Options {
                fail_fast: true,
                // Zero: no timer of fred's beside ours (`default_command_
                // timeout` still covers the commands sent without them).
                timeout: Some(Duration::ZERO),
                ..Options::default()
            },
        };
        let clustered = matches!(config.topology, RedisTopology::Cluster(_));
        let store = RedisStore {
            batcher: (!clustered).then(|| Batcher::start(link.clone(), config.pool_size)),
            link,
            prefix: config.key_prefix.clone(),
            clustered,
            instance_id: format!("{:016x}", rand::random::<u64>()),
            #[cfg(feature = "test-clock")]
            clock: None,
        };
        if let Err(e) = store.link.prepare(&target, connect_timeout).await {
            let _ = store.link.pool.quit().await;
            return Err(e);
        }
        Ok(store)
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
        let call = Call {
            script: &SCRIPTS.heartbeat,
            keys: vec![format!("{}:{{hb}}:instances", self.prefix)],
            args: vec![
                Value::from(self.now_arg()),
                Value::from(self.instance_id.as_str()),
                Value::Integer(i64::try_from(ttl.as_millis().max(1)).unwrap_or(i64::MAX)),
            ],
        };
        let reply = self.link.run(&[&call]).await?.pop();
        reply
            .and_then(|v| v.as_u64())
            .filter(|&n| n >= 1)
            .ok_or_else(|| StoreError::Protocol("heartbeat: expected a count".into()))
    }

    /// Closes every connection; later calls fail. Dropping the store does
    /// the same in the background.
    pub async fn quit(&self) {
        let _ = self.link.pool.quit().await;
    }
}

impl Link {
    /// The longest time one call may take.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Makes a new connection ready for checks: the server is recent
    /// enough ([`MIN_REDIS_VERSION`], from `INFO server`) and every script is
    /// loaded on every primary, each step within `timeout`.
    async fn prepare(&self, target: &str, timeout: Duration) -> Result<(), Error> {
        let client = self.pool.next();
        let connecting = |e: FredError| Error::connecting(target.to_string(), &e);
        let info = CustomCommand::new_static("INFO", ClusterHash::Random, false);
        let info = within(
            timeout,
            "INFO",
            client.custom::<String, _>(info, vec!["server"]),
        )
        .await;
        // A user the ACL denies INFO is not refused for that: its version
        // stays unknown (the scripts then meet an old server's own error).
        let info = match info {
            Err(e) if e.details().starts_with("NOPERM") => String::new(),
            info => info.map_err(connecting)?,
        };
        if let Some(version) = unsupported_version(&info) {
            return Err(Error::Unsupported {
                target: target.to_string(),
                version,
            });
        }
        self.load_scripts(timeout).await.map_err(connecting)
    }

    /// Loads every script on every primary.
    async fn load_scripts(&self, timeout: Duration) -> Result<(), FredError> {
        let client = self.pool.next();
        let all = async {
            for script in SCRIPTS.all() {
                // Boxed: fred's futures are large, keep ours small.
                Box::pin(client.script_load_cluster::<Value, _>(script.source.as_str())).await?;
            }
            Ok(())
        };
        within(timeout, "SCRIPT LOAD", all).await
    }

    /// Sends `calls` as one pipeline and returns each reply, in order.
    /// Calls answered `NOSCRIPT` are sent again with the full script.
    pub(crate) async fn run(&self, calls: &[&Call]) -> Result<Vec<Value>, StoreError> {
        self.run_by(calls, Instant::now() + self.timeout).await
    }

    /// [`Link::run`], answered by `deadline` (or [`StoreError::Timeout`]).
    pub(crate) async fn run_by(
        &self,
        calls: &[&Call],
        deadline: Instant,
    ) -> Result<Vec<Value>, StoreError> {
        let mut replies = self.send(calls, false, deadline).await?;
        let missing: Vec<usize> = (0..calls.len())
            .filter(|&i| matches!(&replies[i], Err(e) if is_noscript(e)))
            .collect();
        if !missing.is_empty() {
            tracing::info!(
                calls = missing.len(),
                "Redis lost the scripts (NOSCRIPT): reloading"
            );
            let retry: Vec<&Call> = missing.iter().map(|&i| calls[i]).collect();
            let reload = async {
                let timeout = deadline.saturating_duration_since(Instant::now());
                if let Err(e) = self.load_scripts(timeout).await {
                    tracing::warn!(error = %e, "reloading the scripts failed; EVAL keeps checks working");
                }
            };
            let (again, ()) = tokio::join!(self.send(&retry, true, deadline), reload);
            for (i, reply) in missing.into_iter().zip(again?) {
                replies[i] = reply;
            }
        }
        replies
            .into_iter()
            .map(|r| r.map_err(|e| store_error(&e)))
            .collect()
    }

    /// Writes `calls` as one pipeline (`EVALSHA`, or `EVAL` when `full`) and
    /// reads every reply by `deadline`.
    async fn send(
        &self,
        calls: &[&Call],
        full: bool,
        deadline: Instant,
    ) -> Result<Vec<Result<Value, FredError>>, StoreError> {
        let command = |call: &Call| {
            let slot = redis_keyslot(call.routing_key().as_bytes());
            let (name, script) = if full {
                ("EVAL", call.script.source.as_str())
            } else {
                ("EVALSHA", call.script.sha.as_str())
            };
            (
                CustomCommand::new_static(name, ClusterHash::Custom(slot), false),
                call.arguments(script),
            )
        };
        let client = self.pool.next_connected().with_options(&self.options);
        if let [call] = calls {
            // One call (a check on a standalone Redis, unless it names one
            // counter twice): no pipeline object to build and drain.
            let (command, args) = command(call);
            let reply = timeout_at(
                deadline,
                Box::pin(client.custom::<Value, Value>(command, args)),
            )
            .await
            .map_err(|_| StoreError::Timeout)?;
            return Ok(vec![reply]);
        }
        let pipeline = Pipeline::from(client);
        for call in calls {
            let (command, args) = command(call);
            // Queuing in a pipeline only buffers the command. Boxed, as
            // every fred future: inline, fred's futures (kilobytes) would
            // make this one, and each future awaiting it, as large.
            Box::pin(pipeline.custom::<(), Value>(command, args))
                .await
                .map_err(|e| store_error(&e))?;
        }
        let replies = timeout_at(deadline, Box::pin(pipeline.try_all::<Value>()))
            .await
            .map_err(|_| StoreError::Timeout)?;
        if replies.len() != calls.len() {
            // The pipeline failed as a whole: one error stands for all.
            return Err(match replies.into_iter().find_map(Result::err) {
                Some(e) => store_error(&e),
                None => StoreError::Protocol("pipeline reply count mismatch".into()),
            });
        }
        Ok(replies)
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
        let replies = match (&self.batcher, calls.as_mut_slice()) {
            (Some(batcher), [only]) => {
                let deadline = Instant::now() + self.link.timeout;
                let (keys, args) = (
                    mem::take(&mut only.call.keys),
                    mem::take(&mut only.call.args),
                );
                vec![batcher.check(keys, args, deadline).await?]
            }
            _ => {
                // Boxed: fred's futures are kilobytes; inline, every check's
                // future would be that large (and moved at each boxing).
                let calls: Vec<&Call> = calls.iter().map(|c| &c.call).collect();
                let replies = Box::pin(self.link.run(&calls)).await?;
                let mut each = Vec::with_capacity(replies.len());
                for (call, reply) in calls.iter().zip(replies) {
                    each.extend(split(reply, &[call.keys.len()])?);
                }
                each
            }
        };
        let mut outcomes = vec![None; ops.len()];
        for (call, reply) in calls.iter().zip(replies) {
            call.read(reply, &mut outcomes)?;
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

/// `future` (a fred command), or a timeout error naming `what` once
/// `timeout` has passed.
async fn within<T>(
    timeout: Duration,
    what: &str,
    future: impl std::future::Future<Output = Result<T, FredError>>,
) -> Result<T, FredError> {
    // Boxed: fred's futures are kilobytes.
    tokio::time::timeout(timeout, Box::pin(future))
        .await
        .unwrap_or_else(|_| {
            Err(FredError::new(
                fred::error::ErrorKind::Timeout,
                format!("{what} timed out"),
            ))
        })
}

/// The version in `info` (`INFO server`) when it is older than
/// [`MIN_REDIS_VERSION`], else `None` (also when `info` names none: a server
/// that hides it is given the benefit of the doubt; the scripts then fail
/// with Redis's own error).
fn unsupported_version(info: &str) -> Option<String> {
    let version = info
        .lines()
        .find_map(|line| line.strip_prefix("redis_version:"))?
        .trim();
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    let major = parts.next().flatten()?;
    let minor = parts.next().flatten().unwrap_or(0);
    ((major, minor) < MIN_REDIS_VERSION).then(|| version.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_older_than_6_0_is_refused() {
        let info = |v: &str| format!("# Server\r\nredis_version:{v}\r\nredis_mode:standalone\r\n");
        assert_eq!(unsupported_version(&info("5.0.14")), Some("5.0.14".into()));
        assert_eq!(unsupported_version(&info("4.0.9")), Some("4.0.9".into()));
        for supported in ["6.0.0", "6.2.14", "7.0.15", "7.4.1", "8.0.2", "10.1"] {
            assert_eq!(unsupported_version(&info(supported)), None, "{supported}");
        }
        assert_eq!(unsupported_version("# Server\r\n"), None);
        assert_eq!(unsupported_version(&info("unknown")), None);
    }

    /// fred's call futures are kilobytes; every one is boxed, so a call's
    /// future (copied whole each time it is boxed or spawned) stays small.
    #[test]
    fn call_futures_stay_small() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let link = Link {
                pool: Builder::default_centralized()
                    .build_pool(1)
                    .expect("an unconnected pool"),
                timeout: Duration::from_secs(1),
                options: Options::default(),
            };
            let run = link.run(&[]);
            assert!(
                size_of_val(&run) < 2048,
                "Link::run: {} bytes",
                size_of_val(&run)
            );
            let batcher = Batcher::start(link.clone(), 1);
            let check = batcher.check(Vec::new(), Vec::new(), Instant::now());
            assert!(
                size_of_val(&check) < 1024,
                "Batcher::check: {} bytes",
                size_of_val(&check)
            );
        });
    }
}
