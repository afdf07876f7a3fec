//! floodgate-store owns where counters live and how one check becomes one
//! decision: the async [`Store`] trait, the bounded in-memory [`LocalStore`],
//! and the [`Limiter`] facade that applies the multi-policy rule of SPEC §1.
//! It must never depend on a transport (HTTP, gRPC, protobuf) or on config
//! parsing; the Redis store lives in its own crate behind the same trait.
#![forbid(unsafe_code)]

mod error;
mod failover;
mod limiter;
mod local;
mod shards;
mod store;

pub use error::{LimitError, StoreError};
pub use failover::{FailoverConfig, FailoverStore};
pub use limiter::{Check, Limiter, PolicyStatus, Verdict};
pub use local::{LocalConfig, LocalStore};
pub use store::{Refund, Source, Store, StoreOp, StoreOutcome};
