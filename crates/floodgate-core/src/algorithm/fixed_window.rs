//! `fixed_window`: one counter, reset at multiples of `window` since the
//! Unix epoch, or at the start of each calendar period (`calendar`).

use std::sync::Arc;

use super::{needed, WindowState};
use crate::outcome::{Outcome, Receipt};
use crate::policy::Calendar;

/// At most `limit` hits in each window `[k·window, (k+1)·window)`, or in
/// each period of a calendar (then the window index is the period's start
/// in epoch µs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedWindow {
    /// Hits allowed per window; at least 1.
    limit: u64,
    /// Window length in µs; at least 1 (nominal with a calendar).
    window_us: u64,
    /// Calendar periods instead of multiples of `window_us`.
    calendar: Option<Arc<Calendar>>,
}

impl FixedWindow {
    pub(crate) fn new(limit: u64, window_us: u64) -> Self {
        debug_assert!(limit > 0 && window_us > 0);
        FixedWindow {
            limit: limit.max(1),
            window_us: window_us.max(1),
            calendar: None,
        }
    }

    /// Windows that are the periods of `calendar`.
    pub(crate) fn calendar(limit: u64, calendar: Calendar) -> Self {
        FixedWindow {
            limit: limit.max(1),
            window_us: calendar.period().nominal_us(),
            calendar: Some(Arc::new(calendar)),
        }
    }

    /// The window in µs.
    pub(crate) fn window_us(&self) -> u64 {
        self.window_us
    }

    /// The index of the window holding `t_us` and when that window ends.
    fn window_at(&self, t_us: u64) -> (u64, u64) {
        match &self.calendar {
            Some(c) => c.period_at(t_us),
            None => {
                let index = t_us / self.window_us;
                (index, (index + 1) * self.window_us)
            }
        }
    }

    pub(crate) fn check(&self, state: &mut WindowState, now_us: u64, hits: u64) -> Outcome {
        let (index, ends_us) = self.window_at(now_us);
        // Any other stored index is a window that is over: a later one, or
        // one counted under another window length (a reload changed it).
        if index != state.index {
            *state = WindowState {
                index,
                previous: 0,
                current: 0,
            };
        }
        let reset_after_us = ends_us - now_us;
        let allowed = state.current.saturating_add(needed(hits)) <= self.limit;
        let mut receipt = None;
        if allowed && hits > 0 {
            state.current += hits;
            receipt = Some(Receipt {
                at_us: now_us,
                id: 0,
            });
        }
        Outcome {
            allowed,
            limit: self.limit,
            remaining: self.limit.saturating_sub(state.current),
            reset_after_us,
            retry_after_us: if allowed { 0 } else { reset_after_us },
            receipt,
        }
    }

    pub(crate) fn refund(&self, state: &mut WindowState, receipt: Receipt, hits: u64) {
        if self.window_at(receipt.at_us).0 == state.index {
            state.current = state.current.saturating_sub(hits);
        }
    }

    pub(crate) fn expires_at(&self, state: &WindowState) -> u64 {
        match &self.calendar {
            Some(c) => c.period_at(state.index).1,
            None => (state.index + 1) * self.window_us,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000;

    #[test]
    fn allows_limit_per_window_then_resets_at_the_boundary() {
        let fw = FixedWindow::new(3, 10 * S);
        let mut st = WindowState::default();
        let t0 = 100 * S; // a window boundary
        for i in 0..3 {
            let o = fw.check(&mut st, t0 + i, 1);
            assert!(o.allowed);
            assert_eq!(o.remaining, 2 - i);
        }
        let denied = fw.check(&mut st, t0 + 4 * S, 1);
        assert!(!denied.allowed);
        assert_eq!(denied.retry_after_us, 6 * S);
        assert_eq!(denied.receipt, None);
        // Last µs of the window: still denied; first µs of the next: allowed.
        assert!(!fw.check(&mut st, t0 + 10 * S - 1, 1).allowed);
        let o = fw.check(&mut st, t0 + 10 * S, 1);
        assert!(o.allowed);
        assert_eq!(o.remaining, 2);
        assert_eq!(o.reset_after_us, 10 * S);
    }

    #[test]
    fn hits_peek_and_refund() {
        let fw = FixedWindow::new(10, S);
        let mut st = WindowState::default();
        let o = fw.check(&mut st, 0, 7);
        assert!(o.allowed);
        assert_eq!(o.remaining, 3);
        assert!(!fw.check(&mut st, 1, 4).allowed);
        // Peek charges nothing and says whether one more hit fits.
        let peek = fw.check(&mut st, 2, 0);
        assert!(peek.allowed);
        assert_eq!(peek.remaining, 3);
        assert_eq!(peek.receipt, None);
        fw.refund(&mut st, o.receipt.unwrap(), 7);
        assert_eq!(st.current, 0);
        // A refund for a past window changes nothing.
        fw.check(&mut st, S, 2);
        fw.refund(&mut st, o.receipt.unwrap(), 7);
        assert_eq!(st.current, 2);
    }

    #[test]
    fn a_cost_above_the_limit_never_fits() {
        let fw = FixedWindow::new(5, S);
        let mut st = WindowState::default();
        let o = fw.check(&mut st, 0, 6);
        assert!(!o.allowed);
        assert_eq!(o.remaining, 5);
    }

    /// Four checks under limit 3 per 1 s, then the window becomes 10 s (a
    /// reload): the counter from the 1 s window must not stay in force, and
    /// its expiry must be the end of the current 10 s window.
    #[test]
    fn a_longer_window_starts_a_new_window() {
        let before = FixedWindow::new(3, S);
        let mut st = WindowState::default();
        let t0 = 1_750_000_000 * S + 123_456;
        for _ in 0..3 {
            assert!(before.check(&mut st, t0, 1).allowed);
        }
        assert!(!before.check(&mut st, t0, 1).allowed);
        let after = FixedWindow::new(3, 10 * S);
        let o = after.check(&mut st, t0 + 1_000, 1);
        assert!(o.allowed);
        assert_eq!(o.remaining, 2);
        let end = (t0 / (10 * S) + 1) * 10 * S;
        assert_eq!(after.expires_at(&st), end);
        assert_eq!(o.reset_after_us, end - (t0 + 1_000));
        // From then on it counts in 10 s windows.
        assert!(after.check(&mut st, t0 + 2_000, 2).allowed);
        assert!(!after.check(&mut st, t0 + 3 * S, 1).allowed);
        assert!(after.check(&mut st, end, 1).allowed);
    }

    #[test]
    fn a_shorter_window_starts_a_new_window() {
        let before = FixedWindow::new(3, 10 * S);
        let mut st = WindowState::default();
        let t0 = 1_750_000_000 * S + 4 * S + 1;
        assert!(before.check(&mut st, t0, 3).allowed);
        let after = FixedWindow::new(3, S);
        let o = after.check(&mut st, t0 + 1, 1);
        assert!(o.allowed);
        assert_eq!(after.expires_at(&st), (t0 / S + 1) * S);
    }

    #[test]
    fn a_lower_limit_denies_until_the_window_ends_and_no_longer() {
        let before = FixedWindow::new(10, 10 * S);
        let mut st = WindowState::default();
        let t0 = 1_750_000_000 * S;
        assert!(before.check(&mut st, t0, 8).allowed);
        let after = FixedWindow::new(3, 10 * S);
        let denied = after.check(&mut st, t0 + S, 1);
        assert!(!denied.allowed);
        assert_eq!(denied.remaining, 0);
        assert_eq!(denied.retry_after_us, 9 * S);
        assert!(after.check(&mut st, t0 + 10 * S, 1).allowed);
    }

    #[test]
    fn a_calendar_day_counts_until_local_midnight_and_refunds_in_its_day() {
        use crate::policy::{Calendar, Period};
        const H: u64 = 3_600 * S;
        // 2025-10-26 in Paris (25 hours): 00:00 +02:00 to 00:00 +01:00.
        let (start, end) = (1_761_429_600 * S, 1_761_519_600 * S);
        let fw = FixedWindow::calendar(2, Calendar::new(Period::Day, "Europe/Paris").unwrap());
        let mut st = WindowState::default();
        let first = fw.check(&mut st, start + H, 1);
        assert_eq!(first.reset_after_us, 24 * H);
        assert_eq!(st.index, start);
        assert_eq!(fw.expires_at(&st), end);
        assert!(fw.check(&mut st, end - 1, 1).allowed);
        let denied = fw.check(&mut st, end - 1, 1);
        assert_eq!((denied.allowed, denied.retry_after_us), (false, 1));
        // A refund of a charge of this day gives it back.
        fw.refund(&mut st, first.receipt.unwrap(), 1);
        assert!(fw.check(&mut st, end - 1, 1).allowed);
        // The next day starts at local midnight, afresh.
        let next = fw.check(&mut st, end, 2);
        assert!(next.allowed);
        assert_eq!(next.reset_after_us, 24 * H);
        // A refund of yesterday's charge changes nothing today.
        fw.refund(&mut st, first.receipt.unwrap(), 1);
        assert_eq!(st.current, 2);
    }
}
