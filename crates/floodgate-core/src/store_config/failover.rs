//! The failover store's settings (floodgate-store's `FailoverStore` and
//! its loops), built by floodgate-config from `[fallback]` and
//! `[store.local]`.

use std::time::Duration;

use super::LocalConfig;
use crate::FallbackMode;

/// How the failover store trips and what it does while tripped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FailoverConfig {
    /// Fallback mode of policies without their own.
    pub mode: FallbackMode,
    /// Sidecars sharing each limit (≥ 1): `local` policies enforce
    /// `ceil(limit / instances)` while open. The starting value, replaced by
    /// live counts from the heartbeat when it runs (`instances = "auto"`,
    /// then also the floor of every count).
    pub instances: u64,
    /// How often the probe loop pings the primary while open; also the
    /// `retry_after` of `deny` outcomes.
    pub probe_interval: Duration,
    /// Consecutive transient failures that open the breaker (≥ 1).
    pub failure_threshold: u32,
    /// The share of failed calls over a sliding window that also opens it.
    pub trip: RateTrip,
}

/// The rate settings of a breaker.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateTrip {
    /// Share of failed calls (0 < rate ≤ 1) that opens the breaker.
    pub rate: f64,
    /// How far back calls count.
    pub window: Duration,
    /// Calls the window must hold before its rate counts (≥ 1).
    pub min_calls: u32,
}

impl Default for RateTrip {
    /// 25 % of the calls of the last 2 s, once there are 10.
    fn default() -> Self {
        RateTrip {
            rate: 0.25,
            window: Duration::from_secs(2),
            min_calls: 10,
        }
    }
}

/// Everything the failover store's start needs besides how to reach the
/// primary.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FailoverSettings {
    /// Bounds of the local fallback store.
    pub local: LocalConfig,
    /// How the store trips and falls back; `instances` is the fixed count,
    /// or with `count_instances` the minimum and the count until the first
    /// heartbeat answers.
    pub config: FailoverConfig,
    /// Count live sidecars with the heartbeat (`instances = "auto"`).
    pub count_instances: bool,
}
