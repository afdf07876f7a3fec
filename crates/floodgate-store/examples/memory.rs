//! Resident memory per tracked key of the local store.
//!
//! Run: `cargo run --release -p floodgate-store --example memory -- 1000000`
//! Prints RSS before and after tracking N `sliding_window` counters (keys
//! like `ai-per-user:user123456`, as the default config builds them), with
//! the allocator `floodgate serve` runs with (mimalloc).

use std::sync::Arc;

use floodgate_core::{AlgorithmKind, Policy, PolicySpec, SystemClock};
use floodgate_store::{LocalConfig, LocalStore, Source};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn main() {
    let keys: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let policy = Policy::new(PolicySpec {
        name: "ai-per-user".into(),
        key: vec!["user".into()],
        limit: 500,
        window_us: Some(60_000_000),
        algorithm: AlgorithmKind::SlidingWindow,
        ..PolicySpec::default()
    })
    .expect("valid policy");
    let store = LocalStore::new(
        LocalConfig {
            max_keys: keys,
            shards: 64,
        },
        Arc::new(SystemClock::new()),
        Source::Local,
    );
    let before = rss_bytes();
    let mut key = String::new();
    for i in 0..keys {
        key.clear();
        key.push_str("ai-per-user:user");
        key.push_str(&i.to_string());
        store.check_one(&policy, &key, 1);
    }
    let after = rss_bytes();
    println!(
        "keys tracked: {} (evicted {}); RSS before {:.1} MiB, after {:.1} MiB; {:.0} bytes per key",
        store.len(),
        store.evictions(),
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        (after - before) as f64 / keys as f64
    );
}
