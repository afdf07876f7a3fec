//! Opening a [`super::RedisStore`]'s connections: the pool's settings,
//! its first connections within a bound, then the server's version and the
//! scripts checked and loaded.

use std::time::Duration;

use fred::clients::Pool;
use fred::error::Error as FredError;
use fred::interfaces::ClientLike;
use fred::types::config::{PerformanceConfig, ReconnectPolicy};
use fred::types::{Builder, ClusterHash, CustomCommand};

use super::link::{within, Link};
use crate::config::to_fred;
use crate::error::MIN_REDIS_VERSION;
use crate::liveness::{keepalive, unresponsive_after, MAX_QUEUED_COMMANDS};
use crate::{Error, RedisConfig};

/// Shortest time allowed for opening a connection (TCP, TLS, AUTH), whatever
/// the per-call timeout: a handshake takes several round trips.
const MIN_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Cluster redirections (MOVED, ASK) one call may follow.
const MAX_REDIRECTIONS: u32 = 3;

/// The pool `config` describes, not connected yet: fail-fast calls,
/// bounded redirections, TCP keepalive, and reconnection with backoff.
///
/// # Errors
/// [`Error::Config`] for invalid settings; [`Error::connecting`]'s errors
/// when fred refuses them.
pub(super) fn build_pool(config: &RedisConfig, target: &str) -> Result<Pool, Error> {
    let fred_config = to_fred(config)?;
    let connect_timeout = connect_timeout(config);
    Builder::from_config(fred_config)
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
        .map_err(|e| Error::connecting(target.to_string(), &e))
}

/// How long opening one connection may take: `config.timeout`, at least
/// [`MIN_CONNECT_TIMEOUT`].
pub(super) fn connect_timeout(config: &RedisConfig) -> Duration {
    config.timeout.max(MIN_CONNECT_TIMEOUT)
}

/// Opens `pool`'s connections within twice `connect_timeout`; on a
/// timeout the pool is shut.
///
/// # Errors
/// [`Error::Unreachable`] (and the other [`Error::connecting`] errors)
/// when Redis cannot be reached in time.
pub(super) async fn open(
    pool: &Pool,
    target: &str,
    connect_timeout: Duration,
) -> Result<(), Error> {
    let init = tokio::time::timeout(connect_timeout * 2, Box::pin(pool.init())).await;
    match init {
        Ok(Ok(_task)) => Ok(()),
        Ok(Err(e)) => Err(Error::connecting(target.to_string(), &e)),
        Err(_) => {
            let _ = pool.quit().await;
            Err(Error::Unreachable {
                target: target.to_string(),
                reason: format!("no connection within {connect_timeout:?}"),
            })
        }
    }
}

impl Link {
    /// Makes a new connection ready for checks: the server is recent
    /// enough ([`MIN_REDIS_VERSION`], from `INFO server`) and every script is
    /// loaded on every primary, each step within `timeout`.
    pub(super) async fn prepare(&self, target: &str, timeout: Duration) -> Result<(), Error> {
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
}

/// The version in `info` (`INFO server`) when it is older than
/// [`MIN_REDIS_VERSION`], else `None` (also when `info` names none: a server
/// that hides it is given the benefit of the doubt; the scripts then fail
/// with Redis's own error).
pub(super) fn unsupported_version(info: &str) -> Option<String> {
    let version = info
        .lines()
        .find_map(|line| line.strip_prefix("redis_version:"))?
        .trim();
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    let major = parts.next().flatten()?;
    let minor = parts.next().flatten().unwrap_or(0);
    ((major, minor) < MIN_REDIS_VERSION).then(|| version.to_string())
}
