//! When the failover breaker opens: after `failure_threshold` consecutive
//! counted failures, **or** when at least `failure_rate` of the primary
//! calls of the last `failure_window` failed, once that window holds at
//! least `failure_min_calls` calls. The rate catches what the consecutive
//! count cannot: a Redis Cluster with one node gone, where every success on
//! another node's slots resets the consecutive count.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use std::time::Instant;

/// Slices of the rate window (the window slides one slice at a time).
const SLICES: usize = 10;

use floodgate_core::store_config::RateTrip;

/// Counts primary calls and says when to trip.
pub(crate) struct Breaker {
    threshold: u32,
    trip: RateTrip,
    consecutive: AtomicU32,
    slices: Mutex<Slices>,
}

/// Calls and failures per slice, slice `i` covering the `i`-th
/// `window / SLICES` since `start`.
struct Slices {
    start: Instant,
    /// Index of the newest slice.
    newest: u64,
    counts: [(u32, u32); SLICES],
}

impl Breaker {
    /// A breaker opening after `threshold` consecutive failures or at the
    /// `trip` rate.
    pub(crate) fn new(threshold: u32, trip: RateTrip) -> Breaker {
        Breaker {
            threshold: threshold.max(1),
            trip: RateTrip {
                min_calls: trip.min_calls.max(1),
                window: trip.window.max(Duration::from_millis(SLICES as u64)),
                ..trip
            },
            consecutive: AtomicU32::new(0),
            slices: Mutex::new(Slices {
                start: Instant::now(),
                newest: 0,
                counts: [(0, 0); SLICES],
            }),
        }
    }

    /// Notes a call that answered.
    pub(crate) fn success(&self) {
        self.consecutive.store(0, Ordering::Release);
        self.record(false);
    }

    /// Notes a counted failure; returns whether the breaker should open.
    pub(crate) fn failure(&self) -> bool {
        let n = self.consecutive.fetch_add(1, Ordering::AcqRel) + 1;
        let (calls, failures) = self.record(true);
        n >= self.threshold
            || (calls >= self.trip.min_calls
                && f64::from(failures) >= self.trip.rate * f64::from(calls))
    }

    /// Forgets everything (the breaker closed again).
    pub(crate) fn reset(&self) {
        self.consecutive.store(0, Ordering::Release);
        let mut slices = self.slices.lock();
        slices.counts = [(0, 0); SLICES];
    }

    /// Adds one call to the current slice; returns the window's calls and
    /// failures.
    fn record(&self, failed: bool) -> (u32, u32) {
        let slice = self.trip.window / SLICES as u32;
        let mut s = self.slices.lock();
        let index = u64::try_from(s.start.elapsed().as_nanos() / slice.as_nanos().max(1))
            .unwrap_or(u64::MAX);
        if index > s.newest {
            // Clear the slices that passed since the newest one.
            let passed = (index - s.newest).min(SLICES as u64);
            for k in 0..passed {
                let i = usize::try_from((index - k) % SLICES as u64).unwrap_or(0);
                s.counts[i] = (0, 0);
            }
            s.newest = index;
        }
        let i = usize::try_from(index % SLICES as u64).unwrap_or(0);
        s.counts[i].0 += 1;
        s.counts[i].1 += u32::from(failed);
        s.counts
            .iter()
            .fold((0, 0), |(c, f), &(ci, fi)| (c + ci, f + fi))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(
            3,
            RateTrip {
                rate: 0.5,
                window: Duration::from_secs(1),
                min_calls: 10,
            },
        )
    }

    #[tokio::test]
    async fn consecutive_failures_trip() {
        let b = breaker();
        assert!(!b.failure());
        assert!(!b.failure());
        assert!(b.failure());
    }

    #[tokio::test]
    async fn a_sustained_rate_trips_although_successes_interleave() {
        let b = breaker();
        let mut tripped = false;
        // One node of three gone, twice as often as not: never three
        // failures in a row.
        for round in 0..10 {
            b.success();
            tripped |= b.failure();
            tripped |= b.failure();
            if tripped {
                assert!(round >= 3, "not before min_calls");
                break;
            }
        }
        assert!(tripped);
    }

    #[tokio::test]
    async fn a_low_rate_does_not_trip_and_old_failures_lapse() {
        let b = breaker();
        for _ in 0..50 {
            b.success();
            b.success();
            assert!(!b.failure(), "a third of the calls is below 50 %");
        }
        let b = breaker();
        for _ in 0..4 {
            b.failure();
            b.success();
        }
        // Those failures are a window old: five fresh successes and one
        // failure are well below the rate.
        std::thread::sleep(Duration::from_millis(1_100));
        for _ in 0..5 {
            b.success();
        }
        assert!(!b.failure());
    }
}
