//! Time as the algorithms see it: microseconds since the Unix epoch.
//!
//! Microseconds (not nanoseconds) because the Redis scripts do the same
//! arithmetic in Lua doubles, which are exact only up to 2^53: epoch
//! microseconds stay exact until the year 2255, epoch nanoseconds do not.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of "now" in microseconds since the Unix epoch.
///
/// Implementations must be monotonic: a later call never returns less.
pub trait Clock: Send + Sync {
    /// The current time, in microseconds since the Unix epoch.
    fn now_us(&self) -> u64;
}

/// The production clock: wall-clock aligned at start, then advanced by a
/// monotonic counter, so windows line up with the epoch (as in Redis) while
/// a wall-clock step never moves time backwards.
///
/// The counter is `quanta`'s (the CPU's invariant TSC where there is one,
/// the OS monotonic clock otherwise): a read costs about half of
/// `std::time::Instant::now` here, and every local decision reads it. Its
/// rate is calibrated once, at the first clock made in the process (0.6 ms
/// here), and is not slewed by NTP as `CLOCK_MONOTONIC` is: over
/// days it may drift from the wall clock by the TSC's error (parts per
/// million), which shifts window edges by as much against Redis's clock.
#[derive(Debug)]
pub struct SystemClock {
    /// Epoch microseconds read once when the clock was made.
    base_us: u64,
    /// The monotonic counter.
    clock: quanta::Clock,
    /// The counter's raw reading matching `base_us`.
    base: u64,
}

impl SystemClock {
    /// A clock aligned with the wall clock now.
    pub fn new() -> Self {
        let clock = quanta::Clock::new();
        let base = clock.raw();
        let base_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        SystemClock {
            base_us,
            clock,
            base,
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now_us(&self) -> u64 {
        self.base_us + self.clock.delta_as_nanos(self.base, self.clock.raw()) / 1_000
    }
}

/// A clock that only moves when told to: makes every timing test exact.
#[derive(Debug, Default)]
pub struct ManualClock {
    /// Current time in epoch microseconds.
    now: AtomicU64,
}

impl ManualClock {
    /// A clock frozen at `now_us`.
    pub fn new(now_us: u64) -> Self {
        ManualClock {
            now: AtomicU64::new(now_us),
        }
    }

    /// Moves the clock forward by `us` microseconds.
    pub fn advance(&self, us: u64) {
        self.now.fetch_add(us, Ordering::SeqCst);
    }

    /// Sets the clock to `now_us`; callers keep it monotonic.
    pub fn set(&self, now_us: u64) {
        self.now.store(now_us, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_us(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_is_epoch_aligned_and_monotonic() {
        let clock = SystemClock::new();
        let a = clock.now_us();
        let b = clock.now_us();
        assert!(b >= a);
        // After 2020-01-01.
        assert!(a > 1_577_836_800_000_000);
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(10);
        assert_eq!(clock.now_us(), 10);
        clock.advance(5);
        assert_eq!(clock.now_us(), 15);
    }
}
