//! The Redis store as the failover store's primary: how it is reached
//! ([`RedisConnector`]) and its heartbeat (`lua/heartbeat.lua`). The
//! failover itself (breaker, fallback, loops) lives in floodgate-store's
//! `failover` module.

use std::future::Future;
use std::time::Duration;

use floodgate_store::{Connect, Heartbeat, StoreError};

use crate::{Error, RedisConfig, RedisStore};

/// Connects the Redis store as [`RedisConfig`] says, once per attempt.
#[derive(Debug, Clone)]
pub struct RedisConnector {
    /// Where and how to connect.
    config: RedisConfig,
}

impl RedisConnector {
    /// A connector for `config`.
    pub fn new(config: RedisConfig) -> Self {
        RedisConnector { config }
    }
}

impl Connect for RedisConnector {
    type Primary = RedisStore;
    type Error = Error;

    fn connect(&self) -> impl Future<Output = Result<RedisStore, Error>> + Send {
        RedisStore::connect(&self.config)
    }

    fn is_transient(error: &Error) -> bool {
        error.is_transient()
    }
}

impl Heartbeat for RedisStore {
    fn heartbeat(&self, ttl: Duration) -> impl Future<Output = Result<u64, StoreError>> + Send {
        RedisStore::heartbeat(self, ttl)
    }
}
