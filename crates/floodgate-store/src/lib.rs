//! floodgate-store owns where counters live and how one check becomes one
//! decision: the async [`Store`] trait, the bounded in-memory [`LocalStore`],
//! the [`FailoverStore`] and [`DenyCache`] that wrap a shared store (the
//! failover's loops started by [`start_failover`]), and the
//! [`Limiter`] facade that applies the multi-policy rule (docs/api.md), and
//! the [`WaitRoom`] where checks wait for their turn ([`check_waiting`]).
//! It must never depend on a transport (HTTP, gRPC, protobuf) or on config
//! parsing; the Redis store lives in its own crate behind the same trait.
#![forbid(unsafe_code)]

mod deny_cache;
mod error;
mod failover;
mod limiter;
mod local;
mod resets;
mod shards;
mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod wait;

pub use deny_cache::{DenyCache, DENY_CACHE_ENTRIES};
pub use error::{LimitError, StoreError};
pub use failover::{
    start as start_failover, Connect, FailoverConfig, FailoverSettings, FailoverStore, Heartbeat,
    RateTrip, HEARTBEAT_EVERY, HEARTBEAT_TTL, RECONCILE_PER_PASS,
};
pub use limiter::{
    Check, DenialTop, LeaseMode, Limiter, PolicySnapshot, PolicySource, PolicyStatus, ResetCounter,
    Settlement, Verdict, TOP_MAX_POLICIES,
};
pub use local::{reservation_ttl_us, LocalConfig, LocalStore};
pub use resets::{ResetBus, Resets};
pub use store::{Clear, Reconcile, Refund, Settle, Settled, Source, Store, StoreOp, StoreOutcome};
pub use wait::{
    check_waiting, Joined, Place, Refused, SharedQueue, Ticket, WaitRoom, Waited, WakeBus,
    WakeOnRelease, Woken, DEFAULT_MAX_WAITING_TOTAL,
};
