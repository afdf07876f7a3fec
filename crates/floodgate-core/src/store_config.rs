//! The settings of each store, as one type per store that every crate
//! shares: floodgate-config builds them from `[store]` (and the failover
//! store's from `[fallback]`), floodgate-store and floodgate-redis take
//! them as they are. Plain data, no I/O.
//!
//! The Redis topology is an enum, so a configuration that names no server,
//! or two kinds of servers, cannot be built. URLs are kept as written and
//! parsed by [`RedisUrl`], the one parser; [`crate::redact_url`] hides their
//! passwords wherever they are shown.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::redact_url;

mod failover;
mod url;

pub use failover::{FailoverConfig, FailoverSettings, RateTrip};
pub use url::{split_host_port, BadUrl, RedisUrl};

/// Bounds of the in-memory store (`[store.local]`; also the fallback
/// store while Redis is away).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalConfig {
    /// Most counters tracked at once, over all shards: bounds memory.
    pub max_keys: usize,
    /// Independently locked shards: a power of two.
    pub shards: usize,
}

impl Default for LocalConfig {
    fn default() -> Self {
        LocalConfig {
            max_keys: 1_000_000,
            shards: 64,
        }
    }
}

/// How to reach Redis: exactly one kind of deployment.
///
/// Credentials (`redis://user:password@host:port`) and TLS (`rediss://`)
/// come from the URLs. With several URLs, every one must use the same
/// scheme and the credentials of the first are used for the data nodes
/// (Sentinels themselves are reached without credentials).
#[derive(Clone, PartialEq, Eq)]
pub enum RedisTopology {
    /// One server (`url`): `redis://[user:password@]host[:port][/db]`.
    Standalone(String),
    /// Seed nodes of a Redis Cluster (`cluster`; never empty); the rest of
    /// the cluster is discovered from them.
    Cluster(Vec<String>),
    /// Sentinels (`sentinels`, never empty; port 26379 if omitted) that
    /// name the current master of `service_name`.
    Sentinel {
        /// Sentinel URLs.
        sentinels: Vec<String>,
        /// The monitored master's name (the Sentinel service).
        service_name: String,
    },
}

impl RedisTopology {
    /// Every URL the topology names, in order.
    pub fn urls(&self) -> &[String] {
        match self {
            RedisTopology::Standalone(url) => std::slice::from_ref(url),
            RedisTopology::Cluster(urls) => urls,
            RedisTopology::Sentinel { sentinels, .. } => sentinels,
        }
    }

    /// The servers it names, passwords hidden, for messages.
    pub fn target(&self) -> String {
        let urls: Vec<String> = self.urls().iter().map(|u| redact_url(u)).collect();
        urls.join(", ")
    }
}

impl fmt::Debug for RedisTopology {
    /// Passwords in URLs are shown as `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |urls: &[String]| urls.iter().map(|u| redact_url(u)).collect::<Vec<_>>();
        match self {
            RedisTopology::Standalone(url) => {
                f.debug_tuple("Standalone").field(&redact_url(url)).finish()
            }
            RedisTopology::Cluster(urls) => {
                f.debug_tuple("Cluster").field(&redacted(urls)).finish()
            }
            RedisTopology::Sentinel {
                sentinels,
                service_name,
            } => f
                .debug_struct("Sentinel")
                .field("sentinels", &redacted(sentinels))
                .field("service_name", service_name)
                .finish(),
        }
    }
}

/// `[store.redis]`: where the Redis store connects and how.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// Standalone, Cluster or Sentinel.
    pub topology: RedisTopology,
    /// First part of every key the store writes
    /// (`<prefix>:{<counter>}:<suffix>`); lets several deployments share
    /// one Redis. `[A-Za-z0-9_.-]`, 1 to 32 characters.
    pub key_prefix: String,
    /// Longest time one store call may take; past it the call counts as
    /// failed. Never zero.
    pub timeout: Duration,
    /// Connections (per node) shared by all checks; commands on one
    /// connection are pipelined, so a few suffice. 1 to 64.
    pub pool_size: usize,
    /// A PEM file of CA certificates trusted for `rediss://`, besides the
    /// system roots (a private CA). Only set with `rediss://` URLs; a
    /// relative path is relative to floodgate's working directory.
    pub tls_ca_file: Option<PathBuf>,
    /// Remember Redis's denials and answer a denied key locally until it
    /// may pass (`deny_cache`, default true).
    pub deny_cache: bool,
}

impl RedisConfig {
    /// `topology` with every other setting at its default: key prefix
    /// `fg`, 50 ms per call, 4 connections, the system's CA roots, the deny
    /// cache on.
    pub fn new(topology: RedisTopology) -> Self {
        RedisConfig {
            topology,
            key_prefix: "fg".to_string(),
            timeout: Duration::from_millis(50),
            pool_size: 4,
            tls_ca_file: None,
            deny_cache: true,
        }
    }
}

impl fmt::Debug for RedisConfig {
    /// Passwords in URLs are shown as `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("topology", &self.topology)
            .field("key_prefix", &self.key_prefix)
            .field("timeout", &self.timeout)
            .field("pool_size", &self.pool_size)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("deny_cache", &self.deny_cache)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_debug_or_target() {
        let config = RedisConfig::new(RedisTopology::Cluster(vec![
            "redis://:pw@a:1".into(),
            "redis://u:se/cret@b:2".into(),
        ]));
        assert_eq!(
            config.topology.target(),
            "redis://:***@a:1, redis://u:***@b:2"
        );
        let shown = format!("{config:?}");
        assert!(!shown.contains("pw") && !shown.contains("cret"), "{shown}");
    }
}
