//! Tests of the Redis store against real `redis-server` processes (see
//! `floodgate_e2e::redis_servers`), all in one test binary to keep build and link time low.

mod calendar;
mod cluster;
mod conformance;
mod lockout;
mod measure;
mod reconcile;
mod reload;
mod reset;
mod security;
mod sentinel;
mod settle;
mod standalone;

use std::time::Duration;

use floodgate_redis::{RedisConfig, RedisStore, RedisTopology};

/// Per-call timeout in tests: generous, since debug builds share two cores.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// A store on one standalone server.
pub async fn connect(url: String) -> RedisStore {
    RedisStore::connect(&RedisConfig {
        timeout: TIMEOUT,
        pool_size: 2,
        ..RedisConfig::new(RedisTopology::Standalone(url))
    })
    .await
    .expect("connects")
}

/// A store on a cluster, through its seed nodes.
pub async fn connect_cluster(urls: Vec<String>) -> RedisStore {
    RedisStore::connect(&RedisConfig {
        timeout: TIMEOUT,
        pool_size: 2,
        ..RedisConfig::new(RedisTopology::Cluster(urls))
    })
    .await
    .expect("connects to the cluster")
}

/// One op per policy, each on its counter key, all with the same cost.
pub fn ops<'a>(
    policies: &'a [floodgate_core::Policy],
    keys: &'a [String],
    hits: u64,
) -> Vec<floodgate_store::StoreOp<'a>> {
    policies
        .iter()
        .zip(keys)
        .map(|(policy, key)| floodgate_store::StoreOp::new(policy, key, hits))
        .collect()
}
