//! The one place a policy's [`Algorithm`] is made from its checked
//! settings: [`super::Policy::new`] and [`super::Policy::scaled`] both use it.

use super::{AlgorithmKind, Calendar};
use crate::algorithm::{
    Algorithm, Concurrency, FixedWindow, SlidingLog, SlidingWindow, TokenBucket,
};

/// The settings an algorithm is built from, already checked.
pub(super) struct Params<'a> {
    /// Which algorithm.
    pub kind: AlgorithmKind,
    /// The quota.
    pub limit: u64,
    /// Window in µs; for `concurrency`, the lease timeout.
    pub window_us: u64,
    /// `token_bucket` bucket size.
    pub burst: u64,
    /// Whether reservations can be settled (a settling bucket keeps debt).
    pub settle: bool,
    /// Calendar periods of a `fixed_window`, if any.
    pub calendar: Option<&'a Calendar>,
}

/// The algorithm `params` describe.
pub(super) fn algorithm(params: Params<'_>) -> Algorithm {
    let Params {
        kind,
        limit,
        window_us,
        burst,
        settle,
        calendar,
    } = params;
    match kind {
        AlgorithmKind::SlidingWindow => {
            Algorithm::SlidingWindow(SlidingWindow::new(limit, window_us))
        }
        AlgorithmKind::SlidingLog => Algorithm::SlidingLog(SlidingLog::new(limit, window_us)),
        AlgorithmKind::FixedWindow => Algorithm::FixedWindow(fixed(limit, window_us, calendar)),
        AlgorithmKind::TokenBucket => {
            Algorithm::TokenBucket(bucket(limit, window_us, burst, settle))
        }
        AlgorithmKind::Concurrency => Algorithm::Concurrency(Concurrency::new(limit, window_us)),
    }
}

/// A fixed window: of `window_us`, or the periods of `calendar`.
fn fixed(limit: u64, window_us: u64, calendar: Option<&Calendar>) -> FixedWindow {
    match calendar {
        Some(c) => FixedWindow::calendar(limit, c.clone()),
        None => FixedWindow::new(limit, window_us),
    }
}

/// A token bucket; one that settles keeps the debt of overruns.
fn bucket(limit: u64, window_us: u64, burst: u64, settle: bool) -> TokenBucket {
    let bucket = TokenBucket::new(limit, window_us, burst);
    if settle {
        bucket.settled()
    } else {
        bucket
    }
}
