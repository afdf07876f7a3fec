//! floodgate-redis owns the Redis store: counters shared by every sidecar in
//! one Redis (standalone, Sentinel or Cluster, over TLS and with ACL users),
//! each algorithm a Lua script in `lua/` run atomically next to its state.
//! It implements `floodgate_store::Store` and must never depend on a
//! transport (HTTP, gRPC, protobuf) or on config parsing.
//!
//! # Data layout
//!
//! One key per counter and configuration,
//! `<key_prefix>:{<policy>:<key values>}:<algorithm>[:<shape>]`, always with
//! a TTL no longer than its state matters. The shape is what gives the
//! state its meaning: the window in ms, or the token bucket's burst and
//! emission interval in µs (`key.rs`). Sidecars running two configurations
//! of a policy at once (a reload rolling across the fleet) each count in
//! their own key, so they never reset each other; a reload that changes a
//! shape starts a fresh counter and the old one expires by its TTL.
//!
//! | algorithm | key | state | TTL |
//! |---|---|---|---|
//! | `sliding_window` | `…:sw:<window ms>` | string `<i>:<p>:<c>`: window index, previous and current hits | end of the next window (≤ 2 windows) |
//! | `fixed_window` | `…:fw:<window ms>` | string `<i>:<c>`: window index, hits | end of the window |
//! | `sliding_log` | `…:log:<window ms>` | sorted set, one member `<nonce>:<n>` per admitted hit, scored by its time | newest entry + window |
//! | `token_bucket` | `…:tb:<burst>:<interval µs>` | string: the GCRA theoretical arrival time (µs) | until the bucket is full |
//! | `concurrency` | `…:cc` | sorted set, one member `<lease id>:<slots>` per lease, scored by its expiry | latest lease expiry |
//! | waiting checks | the counter's key + `:q` | sorted set, one member `<expiry ms>:<id>` per waiting check, scored by its arrival (`ticket_queue.rs`) | longest wait + 1 s |
//!
//! Waiting checks are woken across sidecars through the pub/sub channel
//! `<key_prefix>:wake` (`waiters.rs`).
//!
//! A lease holding several slots is one member whose name carries its slot
//! count, so a release (`ZREM`) needs only the lease id and the slots, both
//! in the lease token.
//!
//! # Calls
//!
//! A check is one `EVALSHA` of the check script (`lua/check.lua` after the
//! five algorithms), which decides every policy of the check and charges
//! them only if no enforced policy denies: a denied check holds no quota at
//! any moment and needs no refund. Concurrent checks share calls: on a
//! standalone or Sentinel-managed Redis every check that is one call goes
//! through the batcher (`batch.rs`), which keeps at most `pool_size` calls in flight
//! and sends whatever checks queued meanwhile as **one** `EVALSHA` (up to 64
//! ops); the script decides them one after the other, each all or nothing,
//! so the result is the same as one call per check in some order, for a
//! fraction of Redis's and the client's cost per call. No timer is
//! involved: a lone check leaves at once, sent from its caller's own task.
//! On a Cluster the policies of one check live in different slots, so a
//! check is one call per slot, pipelined (one round trip per node
//! involved); each call is all or nothing, and the
//! limiter refunds the calls that charged when another denied. An op whose
//! key already appears in the call goes to a following call, so it sees the
//! first charge. `NOSCRIPT` is answered by
//! `EVAL` of the full script at once and a reload in the background. Every
//! call has the configured timeout and fails fast while its connection is
//! down, and a call in flight when a connection drops fails rather than
//! being re-sent. One gap remains in fred 10.1: a pipeline queued in the
//! instant a connection drops may still be written once reconnected, after
//! its caller timed out; such a check counts once, late (strict, never
//! lenient). fred 10.1 also follows `MOVED`, but re-sends an
//! `ASK`-redirected call to the slot's old owner: while a slot is half
//! migrated, checks on its moved keys fail (transiently, charging nothing)
//! until the migration completes.
//!
//! A lease release (the `concurrency` refunds of one call) is one `ZREM`
//! per counter (`release.rs`); after an outage the failover store's journal
//! of what its fallback admitted is added to the counters of the same
//! windows by `lua/reconcile.lua` (`reconcile.rs`, 64 counters per call,
//! one slot per call on a Cluster). A connection that leaves a command
//! unanswered for 10 × `timeout` is closed and reopened, idle connections
//! are kept alive by TCP keepalive, and each connection queues at most 4096
//! commands (`liveness.rs`).
//!
//! # Time
//!
//! Scripts read the Redis server's clock (`TIME`), never the sidecar's, so
//! sidecars with skewed clocks agree. Test builds alone can do otherwise:
//! the cargo feature `test-clock` (enabled only by this crate's own
//! dev-dependency) adds `RedisStore::with_test_clock`, which sends an
//! explicit "now" to every script. That is what makes the conformance suite
//! exact: the local store and this one see the same instants, so they must
//! return identical outcomes. Under an override, script time and real time
//! differ, so TTLs get 10 extra minutes (`TEST_SLACK_MS` in the prelude).
//! A production build has no way to send it.
#![forbid(unsafe_code)]

mod batch;
mod config;
mod error;
mod failover;
mod key;
mod liveness;
mod reconcile;
mod release;
mod script;
mod store;
mod ticket_queue;
mod tls;
mod waiters;

pub use error::Error;
pub use failover::RedisConnector;
pub use floodgate_core::store_config::{RedisConfig, RedisTopology};
pub use key::block_key;
pub use store::RedisStore;
pub use ticket_queue::RedisQueue;
pub use waiters::{connect_wake_channel, reset_channel, wake_channel, WakePublisher};

/// The Redis key of the counter `counter_key` of `policy` under `prefix`
/// (the store's `key_prefix`), as the store reads and writes it:
/// `<prefix>:{<counter key>}:<algorithm>[:<shape>]`.
pub fn redis_key(prefix: &str, policy: &floodgate_core::Policy, counter_key: &str) -> String {
    key::redis_key(prefix, counter_key, policy)
}

/// The check script's source, as loaded: test builds only (cargo feature
/// `test-clock`), for tests that call it directly.
#[cfg(feature = "test-clock")]
pub fn check_script_source() -> &'static str {
    script::SCRIPTS.check.source.as_str()
}
