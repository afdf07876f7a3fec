//! Settling a reservation: a check charged an estimated cost; once the
//! actual cost is known, the difference is charged (an overrun) or given
//! back (a refund). Only `sliding_window`, `fixed_window` and
//! `token_bucket` settle: a log entry per hit or a lease per slot has no
//! meaning for a cost known afterwards.
//!
//! - An overrun is charged whatever the quota left: the counter may go past
//!   its limit (the budget below zero), so the checks that follow are denied
//!   until it has recovered — in the window where the overrun was recorded
//!   (and, for `sliding_window`, the share of it that weighs in the next
//!   window), or until the bucket's debt has drained. A window counter
//!   holds at most [`window_cap`] and a bucket's debt at most
//!   [`MAX_DEBT_US`], so the arithmetic stays exact in both stores.
//! - A refund gives back to the counter the reservation charged, as a
//!   refund of a denied check does: nothing once its window has passed;
//!   for `token_bucket`, only the part of its debt not yet drained.

use super::{window_state, Algorithm, State};
use crate::settlement::Reservation;

/// Longest debt a settleable `token_bucket` may hold beyond now: 3660
/// days, the longest refill a policy may configure (µs timestamps plus this
/// stay far below 2^53).
pub const MAX_DEBT_US: u64 = 10 * 366 * 86_400 * 1_000_000;

/// Largest count a window counter of a settleable policy may hold:
/// `2^53 / window_ms`, so `sliding_window`'s weighted estimate
/// (`previous × weight_ms`) stays exact in f64 and Lua.
pub fn window_cap(window_us: u64) -> u64 {
    (1u64 << 53) / (window_us / 1_000).max(1)
}

impl Algorithm {
    /// Whether this algorithm can settle a reservation.
    pub fn settles(&self) -> bool {
        matches!(
            self,
            Algorithm::SlidingWindow(_) | Algorithm::FixedWindow(_) | Algorithm::TokenBucket(_)
        )
    }

    /// Settles `reservation` with its `actual` cost at `now_us`: charges
    /// `actual − estimate` when positive (whatever the quota left), gives
    /// back `estimate − actual` when negative. Returns the difference asked
    /// for (`actual − estimate`). Algorithms that do not settle
    /// ([`Algorithm::settles`]) are left alone.
    pub fn settle(
        &self,
        state: &mut State,
        reservation: &Reservation,
        actual: u64,
        now_us: u64,
    ) -> i128 {
        let estimate = reservation.estimate;
        let difference = i128::from(actual) - i128::from(estimate);
        if !self.settles() {
            return 0;
        }
        if actual < estimate {
            self.refund(state, reservation.receipt, estimate - actual, now_us);
        } else if actual > estimate {
            self.overrun(state, actual - estimate, now_us);
        }
        difference
    }

    /// Charges `extra` at `now_us` past any limit (see the module doc).
    fn overrun(&self, state: &mut State, extra: u64, now_us: u64) {
        match self {
            Algorithm::SlidingWindow(_) | Algorithm::FixedWindow(_) => {
                // A peek moves the counter to the current window.
                self.check(state, now_us, 0, 0);
                let window_us = self.window_us();
                let counter = window_state(state);
                counter.current = counter
                    .current
                    .saturating_add(extra)
                    .min(window_cap(window_us));
            }
            Algorithm::TokenBucket(tb) => {
                let tat = super::tat_state(state);
                let interval = tb.interval_us();
                let tokens = extra.min(MAX_DEBT_US / interval + 1);
                *tat = ((*tat).max(now_us) + tokens * interval).min(now_us + MAX_DEBT_US);
            }
            _ => {}
        }
    }

    /// The window in µs of a window algorithm (0 for the others).
    fn window_us(&self) -> u64 {
        match self {
            Algorithm::SlidingWindow(a) => a.window_us(),
            Algorithm::FixedWindow(a) => a.window_us(),
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests;
