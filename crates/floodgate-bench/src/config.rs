//! A validated run description. Built from flags by [`crate::cli::Args`];
//! every field is within its documented bounds, and every target is
//! loopback (a [`Target`] cannot be built otherwise).

use std::time::Duration;

use crate::keys::KeySpec;
use crate::protocol::{Protocol, RequestTemplate};
use crate::target::Target;

/// Longest run accepted: every run stops by itself within this (plus one
/// check timeout).
pub const MAX_DURATION: Duration = Duration::from_secs(600);
/// Longest per-check timeout accepted.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);
/// Most concurrent workers (connections × in flight) accepted.
pub const MAX_WORKERS: usize = 1024;

/// How checks are scheduled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Load {
    /// Each worker sends its next check as soon as the previous answer
    /// arrives.
    Closed,
    /// Check i is scheduled at `i / rate` seconds after the start, whatever
    /// the answers; latency is measured from that time.
    Open {
        /// Checks per second, > 0.
        rate: f64,
    },
}

/// One bench run.
#[derive(Debug, Clone)]
pub struct Config {
    /// The API spoken.
    pub protocol: Protocol,
    /// Where checks go, round-robin by check sequence number; never empty.
    pub targets: Vec<Target>,
    /// Connection slots (gRPC channels; for HTTP, groups of connections).
    pub connections: usize,
    /// Concurrent checks per connection slot.
    pub in_flight: usize,
    /// Closed or open loop.
    pub load: Load,
    /// Stop after this many checks have been started, if set.
    pub requests: Option<u64>,
    /// Stop starting checks after this long (≤ [`MAX_DURATION`]).
    pub duration: Duration,
    /// A check not answered within this counts as a transport error.
    pub timeout: Duration,
    /// Which key each check carries.
    pub keys: KeySpec,
    /// What every check carries besides its key.
    pub template: RequestTemplate,
    /// Accuracy mode: the per-key quota admitted checks are compared with.
    pub accuracy_limit: Option<u64>,
    /// Seed of the key generators (worker w uses a seed derived from it).
    pub seed: u64,
}

impl Config {
    /// Total concurrent workers.
    pub fn workers(&self) -> usize {
        self.connections * self.in_flight
    }
}
