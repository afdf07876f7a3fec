//! `sliding_log`: exact. No more than `limit` admitted hits in any half-open
//! interval `(t − window, t]`; a hit admitted at `t` stops counting at
//! `t + window`.

use std::collections::VecDeque;

use super::needed;
use crate::outcome::{Outcome, Receipt};

/// Largest `limit` a sliding log accepts: its state is one entry per hit.
pub const MAX_LOG_LIMIT: u64 = 10_000;

/// Exactly `limit` hits per sliding `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlidingLog {
    /// Hits allowed per window; 1 to [`MAX_LOG_LIMIT`].
    limit: u64,
    /// Window length in µs; at least 1.
    window_us: u64,
}

impl SlidingLog {
    pub(crate) fn new(limit: u64, window_us: u64) -> Self {
        debug_assert!(limit > 0 && limit <= MAX_LOG_LIMIT && window_us > 0);
        SlidingLog {
            limit: limit.clamp(1, MAX_LOG_LIMIT),
            window_us: window_us.max(1),
        }
    }

    pub(crate) fn check(&self, log: &mut VecDeque<u64>, now_us: u64, hits: u64) -> Outcome {
        while log
            .front()
            .is_some_and(|&t| t.saturating_add(self.window_us) <= now_us)
        {
            log.pop_front();
        }
        let used = log.len() as u64;
        let need = needed(hits);
        let allowed = used.saturating_add(need) <= self.limit;
        let mut receipt = None;
        if allowed && hits > 0 {
            log.extend(std::iter::repeat_n(now_us, hits as usize));
            receipt = Some(Receipt {
                at_us: now_us,
                id: 0,
            });
        }
        let reset_after_us = log.back().map_or(0, |&t| t + self.window_us - now_us);
        let retry_after_us = if allowed {
            0
        } else if need > self.limit {
            reset_after_us
        } else {
            // The entry whose expiry leaves room for `need` more.
            let index = (used + need - self.limit - 1) as usize;
            log[index] + self.window_us - now_us
        };
        Outcome {
            allowed,
            limit: self.limit,
            remaining: self.limit.saturating_sub(log.len() as u64),
            reset_after_us,
            retry_after_us,
            receipt,
        }
    }

    pub(crate) fn refund(log: &mut VecDeque<u64>, receipt: Receipt, hits: u64) {
        let mut left = hits;
        let mut i = log.len();
        while left > 0 && i > 0 {
            i -= 1;
            if log[i] == receipt.at_us {
                log.remove(i);
                left -= 1;
            } else if log[i] < receipt.at_us {
                break;
            }
        }
    }

    pub(crate) fn expires_at(&self, log: &VecDeque<u64>) -> u64 {
        log.back().map_or(0, |&t| t + self.window_us)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000;

    #[test]
    fn exact_in_any_interval() {
        let sl = SlidingLog::new(3, 10 * S);
        let mut log = VecDeque::new();
        assert!(sl.check(&mut log, 0, 1).allowed);
        assert!(sl.check(&mut log, 4 * S, 1).allowed);
        assert!(sl.check(&mut log, 9 * S, 1).allowed);
        let denied = sl.check(&mut log, 9 * S + 1, 1);
        assert!(!denied.allowed);
        // The hit at 0 stops counting at 10 s.
        assert_eq!(denied.retry_after_us, 10 * S - (9 * S + 1));
        assert!(!sl.check(&mut log, 10 * S - 1, 1).allowed);
        assert!(sl.check(&mut log, 10 * S, 1).allowed);
        assert!(!sl.check(&mut log, 10 * S, 1).allowed);
    }

    #[test]
    fn hits_retry_and_refund() {
        let sl = SlidingLog::new(5, S);
        let mut log = VecDeque::new();
        let first = sl.check(&mut log, 0, 3).receipt.unwrap();
        sl.check(&mut log, 100, 2);
        let denied = sl.check(&mut log, 200, 2);
        assert!(!denied.allowed);
        // Room for 2 needs the 2nd entry (at 0) to expire: at 1 s.
        assert_eq!(denied.retry_after_us, S - 200);
        assert_eq!(denied.reset_after_us, S + 100 - 200);
        SlidingLog::refund(&mut log, first, 3);
        assert_eq!(log, VecDeque::from(vec![100, 100]));
        let peek = sl.check(&mut log, 300, 0);
        assert!(peek.allowed);
        assert_eq!(peek.remaining, 3);
        assert_eq!(log.len(), 2);
    }
}
