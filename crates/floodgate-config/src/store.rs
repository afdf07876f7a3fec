//! `[store]`: where counters live — the embedded local store or Redis
//! (standalone, Cluster or Sentinel). The settings types are the shared
//! ones of [`floodgate_core::store_config`]; this module reads and checks
//! them (`[store.redis]` in `store/redis.rs`).

use crate::error::Diagnostics;
use crate::raw::{RawLocal, RawRedis, RawStore};
use crate::section::{Node, Section};

mod redis;

pub use floodgate_core::store_config::{LocalConfig, RedisConfig, RedisTopology};

/// The URL with any password replaced by `***`, safe to log (the one
/// redaction every crate uses; a password may hold `/`).
pub use floodgate_core::redact_url as redact;

pub(crate) use floodgate_core::store_config::split_host_port;

/// Which store holds the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreKind {
    /// In-process counters; limits are per sidecar. The default.
    #[default]
    Local,
    /// Shared counters in Redis; limits are global.
    Redis,
}

impl StoreKind {
    /// Every kind, by its configuration name.
    pub const ALL: [(&'static str, StoreKind); 2] =
        [("local", StoreKind::Local), ("redis", StoreKind::Redis)];

    /// The configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::Local => "local",
            StoreKind::Redis => "redis",
        }
    }
}

/// `[store]`: the store in use, with the settings it needs — a Redis
/// store always has its `[store.redis]` (the type holds no Redis store
/// without it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Config {
    /// `kind = "local"`: in-process counters.
    Local {
        /// The local store's bounds.
        local: LocalConfig,
        /// `[store.redis]`, validated, when the file has it although the
        /// store is local: unused, and reported so by the summary.
        unused_redis: Option<RedisConfig>,
    },
    /// `kind = "redis"`: shared counters in Redis.
    Redis {
        /// Bounds of the local fallback store.
        local: LocalConfig,
        /// `[store.redis]`, validated.
        redis: RedisConfig,
    },
}

impl Default for Config {
    /// The local store with default bounds, no `[store.redis]`.
    fn default() -> Config {
        Config::local_store(LocalConfig::default())
    }
}

impl Config {
    /// The local store alone, with `local` bounds.
    pub fn local_store(local: LocalConfig) -> Config {
        Config::Local {
            local,
            unused_redis: None,
        }
    }

    /// Redis as `redis` says, with `local` bounds for the fallback.
    pub fn redis_store(local: LocalConfig, redis: RedisConfig) -> Config {
        Config::Redis { local, redis }
    }

    /// The store in use.
    pub fn kind(&self) -> StoreKind {
        match self {
            Config::Local { .. } => StoreKind::Local,
            Config::Redis { .. } => StoreKind::Redis,
        }
    }

    /// Bounds of the local store (the store itself, or Redis's fallback).
    pub fn local(&self) -> LocalConfig {
        match self {
            Config::Local { local, .. } | Config::Redis { local, .. } => *local,
        }
    }

    /// The Redis settings when Redis is the store in use (`kind = "redis"`);
    /// `None` for the local store, even when the file has an unused
    /// `[store.redis]`.
    pub fn redis(&self) -> Option<&RedisConfig> {
        match self {
            Config::Redis { redis, .. } => Some(redis),
            Config::Local { .. } => None,
        }
    }

    /// `[store.redis]` as read, whether Redis is the store in use or not.
    #[cfg(test)]
    pub(crate) fn redis_section(&self) -> Option<&RedisConfig> {
        match self {
            Config::Redis { redis, .. } => Some(redis),
            Config::Local { unused_redis, .. } => unused_redis.as_ref(),
        }
    }

    /// Reads `[store]`, reporting every problem into `diag`.
    pub(crate) fn read(node: Option<&Node<'_>>, diag: &mut Diagnostics<'_>) -> Config {
        let section = Section::<RawStore>::read_or_default(node, "[store]", diag);
        let kind = section
            .choice("kind", section.raw.kind.as_deref(), &StoreKind::ALL, diag)
            .unwrap_or_default();
        let local = section
            .child("local")
            .and_then(|n| Section::<RawLocal>::read(n, "[store.local]", diag))
            .map_or_else(LocalConfig::default, |s| read_local(&s, diag));
        let redis = section
            .child("redis")
            .and_then(|n| Section::<RawRedis>::read(n, "[store.redis]", diag))
            .and_then(|s| redis::read(&s, diag));
        match (kind, redis) {
            (StoreKind::Redis, Some(redis)) => Config::redis_store(local, redis),
            (StoreKind::Redis, None) => {
                if !section.has("redis") {
                    diag.push(
                        section.at("kind"),
                        "kind = \"redis\" needs a [store.redis] section with `url`, `cluster` or `sentinels`",
                    );
                }
                // Otherwise `[store.redis]` reported its own errors.
                Config::local_store(local)
            }
            (StoreKind::Local, unused_redis) => Config::Local {
                local,
                unused_redis,
            },
        }
    }
}

fn read_local(section: &Section<'_, RawLocal>, diag: &mut Diagnostics<'_>) -> LocalConfig {
    let default = LocalConfig::default();
    let max_keys = section.raw.max_keys.unwrap_or(default.max_keys);
    if max_keys < 1000 {
        diag.push(
            section.at("max_keys"),
            format!("max_keys must be at least 1000, found {max_keys}"),
        );
    }
    let shards = section.raw.shards.unwrap_or(default.shards);
    if !shards.is_power_of_two() || shards > 1024 {
        diag.push(
            section.at("shards"),
            format!("shards must be a power of two from 1 to 1024, found {shards}"),
        );
    }
    LocalConfig { max_keys, shards }
}
