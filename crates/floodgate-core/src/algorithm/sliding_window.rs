//! `sliding_window`: the two-counter weighted estimate.
//!
//! estimate = floor(previous × (time left in the current window) / window)
//!            + current
//!
//! "Time left" is counted in whole milliseconds, rounded up, and windows are
//! whole milliseconds. `Policy::new` keeps `limit × window_ms ≤ 2^53`, so
//! the product is exact both here and in the Redis script's Lua doubles:
//! both stores compute the same integer and decide alike.

use super::{needed, WindowState};
use crate::outcome::{Outcome, Receipt};

/// Approximately `limit` hits per sliding `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlidingWindow {
    /// Hits allowed per window; at least 1.
    limit: u64,
    /// Window length in µs; at least 1.
    window_us: u64,
}

impl SlidingWindow {
    pub(crate) fn new(limit: u64, window_us: u64) -> Self {
        debug_assert!(limit > 0 && window_us > 0);
        SlidingWindow {
            limit: limit.max(1),
            window_us: window_us.max(1),
        }
    }

    /// The window in µs.
    pub(crate) fn window_us(&self) -> u64 {
        self.window_us
    }

    fn window_ms(&self) -> u64 {
        self.window_us / 1_000
    }

    /// The weighted share of `previous` still inside the window when
    /// `weight_ms` of the current window remain.
    fn carried(&self, previous: u64, weight_ms: u64) -> u64 {
        (u128::from(previous) * u128::from(weight_ms) / u128::from(self.window_ms())) as u64
    }

    /// The largest weight (ms) at which `floor(previous·w/window) ≤ room`.
    fn max_weight_ms(&self, previous: u64, room: u64) -> u64 {
        let window_ms = u128::from(self.window_ms());
        if previous == 0 {
            return window_ms as u64;
        }
        // floor(p·w/W) ≤ room  ⟺  p·w < (room+1)·W  ⟺  w ≤ ceil((room+1)·W/p) − 1
        let bound = ((u128::from(room) + 1) * window_ms).div_ceil(u128::from(previous)) - 1;
        bound.min(window_ms) as u64
    }

    pub(crate) fn check(&self, state: &mut WindowState, now_us: u64, hits: u64) -> Outcome {
        let index = now_us / self.window_us;
        // Any other stored index is a window that is over; it weighs in only
        // as the window right before this one. (A reload that changed the
        // window length leaves an index of another scale: a new window.)
        if index != state.index {
            let previous = if state.index.checked_add(1) == Some(index) {
                state.current
            } else {
                0
            };
            *state = WindowState {
                index,
                previous,
                current: 0,
            };
        }
        let weight_us = (index + 1) * self.window_us - now_us;
        let used = self
            .carried(state.previous, weight_us.div_ceil(1_000))
            .saturating_add(state.current);
        let need = needed(hits);
        let allowed = used.saturating_add(need) <= self.limit;
        let mut receipt = None;
        let mut used_after = used;
        if allowed && hits > 0 {
            state.current += hits;
            used_after += hits;
            receipt = Some(Receipt {
                at_us: now_us,
                id: 0,
            });
        }
        let retry_after_us = if allowed {
            0
        } else {
            self.retry_after(state, weight_us, need)
        };
        Outcome {
            allowed,
            limit: self.limit,
            remaining: self.limit.saturating_sub(used_after),
            reset_after_us: weight_us,
            retry_after_us,
            receipt,
        }
    }

    /// Time until a check of `need` fits, given the state as it is now.
    fn retry_after(&self, state: &WindowState, weight_us: u64, need: u64) -> u64 {
        if need > self.limit {
            // Never fits; point at the end of the window like a reset.
            return weight_us;
        }
        let room_now = self.limit - need;
        // The weight in ms is ceil(weight_us / 1000): it is ≤ w exactly
        // when weight_us ≤ w·1000.
        if state.current <= room_now {
            // Only the previous window's share is in the way: wait until its
            // weight has fallen far enough within this window.
            let w = self.max_weight_ms(state.previous, room_now - state.current) * 1_000;
            return weight_us.saturating_sub(w).max(1);
        }
        // This window is full: in the next one, `current` becomes the
        // previous counter and must decay below the room left.
        let w = self.max_weight_ms(state.current, room_now) * 1_000;
        weight_us + (self.window_us - w)
    }

    pub(crate) fn refund(&self, state: &mut WindowState, receipt: Receipt, hits: u64) {
        let index = receipt.at_us / self.window_us;
        if index == state.index {
            state.current = state.current.saturating_sub(hits);
        } else if index + 1 == state.index {
            state.previous = state.previous.saturating_sub(hits);
        }
    }

    pub(crate) fn expires_at(&self, state: &WindowState) -> u64 {
        (state.index + 2) * self.window_us
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000;

    #[test]
    fn full_quota_in_the_first_window() {
        let sw = SlidingWindow::new(10, 60 * S);
        let mut st = WindowState::default();
        let t0 = 600 * S;
        for _ in 0..10 {
            assert!(sw.check(&mut st, t0, 1).allowed);
        }
        let denied = sw.check(&mut st, t0, 1);
        assert!(!denied.allowed);
        assert_eq!(denied.remaining, 0);
        // The window is full: in the next one floor(10·w/60s) ≤ 9 needs
        // w < 60 s, i.e. 1 ms into it.
        assert_eq!(denied.retry_after_us, 60 * S + 1_000);
    }

    #[test]
    fn previous_window_decays_linearly() {
        let sw = SlidingWindow::new(10, 60 * S);
        let mut st = WindowState::default();
        let t0 = 600 * S;
        assert!(sw.check(&mut st, t0, 10).allowed);
        // Half-way through the next window, half of the previous 10 count.
        let half = t0 + 90 * S;
        let o = sw.check(&mut st, half, 0);
        assert_eq!(o.remaining, 5);
        assert!(sw.check(&mut st, half, 5).allowed);
        let denied = sw.check(&mut st, half, 1);
        assert!(!denied.allowed);
        // It fits again once floor(10·w/60 s) ≤ 4 → w < 30 s, in whole
        // milliseconds: w ≤ 29 999 ms, 1 ms later.
        assert_eq!(denied.retry_after_us, 1_000);
        assert!(!sw.check(&mut st, half + 999, 1).allowed);
        assert!(sw.check(&mut st, half + 1_000, 1).allowed);
    }

    #[test]
    fn retry_after_is_exactly_when_it_fits_again() {
        let sw = SlidingWindow::new(7, 10 * S);
        let mut st = WindowState::default();
        let t0 = 1_000 * S + 3 * S;
        assert!(sw.check(&mut st, t0, 7).allowed);
        let denied = sw.check(&mut st, t0 + S, 2);
        assert!(!denied.allowed);
        let at = t0 + S + denied.retry_after_us;
        let mut probe = st;
        assert!(!sw.check(&mut probe, at - 1, 2).allowed);
        let mut probe = st;
        assert!(sw.check(&mut probe, at, 2).allowed);
    }

    #[test]
    fn a_gap_of_two_windows_forgets_everything() {
        let sw = SlidingWindow::new(3, S);
        let mut st = WindowState::default();
        sw.check(&mut st, 0, 3);
        let o = sw.check(&mut st, 2 * S, 0);
        assert_eq!(o.remaining, 3);
    }

    #[test]
    fn refund_hits_the_window_it_charged() {
        let sw = SlidingWindow::new(5, S);
        let mut st = WindowState::default();
        let charged = sw.check(&mut st, 10, 3).receipt.unwrap();
        sw.check(&mut st, S + 10, 1);
        sw.refund(&mut st, charged, 3);
        assert_eq!(st.previous, 0);
        assert_eq!(st.current, 1);
    }

    #[test]
    fn a_longer_window_starts_a_new_window() {
        let before = SlidingWindow::new(3, S);
        let mut st = WindowState::default();
        let t0 = 1_750_000_000 * S + 123_456;
        assert!(before.check(&mut st, t0, 3).allowed);
        assert!(!before.check(&mut st, t0, 1).allowed);
        let after = SlidingWindow::new(3, 10 * S);
        let o = after.check(&mut st, t0 + 1_000, 1);
        assert!(o.allowed);
        assert_eq!(o.remaining, 2);
        let index = (t0 + 1_000) / (10 * S);
        assert_eq!(st.index, index);
        assert_eq!(st.previous, 0);
        assert_eq!(after.expires_at(&st), (index + 2) * 10 * S);
    }

    #[test]
    fn a_shorter_window_carries_nothing_over() {
        let before = SlidingWindow::new(3, 10 * S);
        let mut st = WindowState::default();
        let t0 = 1_750_000_000 * S + 5 * S;
        assert!(before.check(&mut st, t0, 3).allowed);
        let after = SlidingWindow::new(3, S);
        // The stored index (10 s scale) is neither this 1 s window nor the
        // one before it: nothing weighs in.
        let o = after.check(&mut st, t0 + 1, 3);
        assert!(o.allowed);
        assert_eq!(o.remaining, 0);
        assert_eq!(st.previous, 0);
        assert_eq!(after.expires_at(&st), ((t0 + 1) / S + 2) * S);
    }

    #[test]
    fn a_lower_limit_decays_like_any_full_window() {
        let before = SlidingWindow::new(10, S);
        let mut st = WindowState::default();
        let t0 = 1_750_000_000 * S;
        assert!(before.check(&mut st, t0, 10).allowed);
        let after = SlidingWindow::new(2, S);
        let denied = after.check(&mut st, t0 + 1, 1);
        assert!(!denied.allowed);
        assert_eq!(denied.remaining, 0);
        // Two windows later nothing is left of it.
        let o = after.check(&mut st, t0 + 2 * S, 2);
        assert!(o.allowed);
    }
}
