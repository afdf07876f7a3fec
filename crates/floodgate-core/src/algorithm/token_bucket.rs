//! `token_bucket` as GCRA: a sustained `limit` per `window`, bursts up to
//! `burst`. The state is one timestamp, the theoretical arrival time (TAT).
//!
//! The emission interval `T = ceil(window / limit)` is rounded up so the
//! sustained rate never exceeds `limit / window`.

use super::needed;
use crate::outcome::{Outcome, Receipt};

/// GCRA parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucket {
    /// Bucket size: hits that may pass at once from a full bucket; ≥ 1.
    burst: u64,
    /// Microseconds one token takes to come back; ≥ 1.
    interval_us: u64,
    /// Whether the policy settles reservations: its debt may then run past
    /// a full bucket (an overrun settled after the call), up to
    /// [`super::settle::MAX_DEBT_US`].
    settle: bool,
}

impl TokenBucket {
    pub(crate) fn new(limit: u64, window_us: u64, burst: u64) -> Self {
        debug_assert!(limit > 0 && window_us >= limit && burst > 0);
        TokenBucket {
            burst: burst.max(1),
            interval_us: window_us.div_ceil(limit.max(1)).max(1),
            settle: false,
        }
    }

    /// The same bucket, keeping the debt of settled overruns beyond a full
    /// bucket (see [`super::settle`]).
    pub(crate) fn settled(self) -> Self {
        TokenBucket {
            settle: true,
            ..self
        }
    }

    /// Most debt the TAT may hold beyond now: a full bucket; for a
    /// settleable bucket, [`super::settle::MAX_DEBT_US`] (settled overruns).
    pub(crate) fn ceiling_us(&self) -> u64 {
        let capacity_us = self.burst * self.interval_us;
        if self.settle {
            capacity_us.max(super::settle::MAX_DEBT_US)
        } else {
            capacity_us
        }
    }

    /// Microseconds one token takes to come back.
    pub fn interval_us(&self) -> u64 {
        self.interval_us
    }

    pub(crate) fn check(&self, tat: &mut u64, now_us: u64, hits: u64) -> Outcome {
        let capacity_us = self.burst * self.interval_us;
        // A bucket never owes more than it holds: a TAT beyond a full
        // bucket's debt (a reload lowered the burst or lengthened the
        // interval) counts as an empty bucket, never as a longer wait. A
        // settleable bucket keeps the debt of settled overruns instead.
        *tat = (*tat).min(now_us.saturating_add(self.ceiling_us()));
        let start = (*tat).max(now_us);
        let need = needed(hits);
        let wanted = start.saturating_add(need.saturating_mul(self.interval_us));
        let allowed = need <= self.burst && wanted - now_us <= capacity_us;
        let mut receipt = None;
        if allowed && hits > 0 {
            *tat = start + hits * self.interval_us;
            receipt = Some(Receipt {
                at_us: now_us,
                id: *tat,
            });
        }
        let level = (*tat).max(now_us) - now_us;
        let retry_after_us = if allowed {
            0
        } else if need > self.burst {
            level
        } else {
            wanted - now_us - capacity_us
        };
        Outcome {
            allowed,
            limit: self.burst,
            remaining: (capacity_us - level.min(capacity_us)) / self.interval_us,
            reset_after_us: level,
            retry_after_us,
            receipt,
        }
    }

    /// Gives back what is left of a charge: its debt drains first-in
    /// first-out, so by `now` only `receipt.id − now` of it (the TAT right
    /// after the charge, minus now) is still owed.
    pub(crate) fn refund(&self, tat: &mut u64, receipt: Receipt, hits: u64, now_us: u64) {
        let owed = hits
            .saturating_mul(self.interval_us)
            .min(receipt.id.saturating_sub(now_us));
        *tat = tat.saturating_sub(owed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000;

    #[test]
    fn burst_then_sustained_rate() {
        // 10 per 10 s sustained (one per second), bursts of 3.
        let tb = TokenBucket::new(10, 10 * S, 3);
        let mut tat = 0;
        let t0 = 1_000 * S;
        for left in (0..3).rev() {
            let o = tb.check(&mut tat, t0, 1);
            assert!(o.allowed);
            assert_eq!(o.remaining, left);
        }
        let denied = tb.check(&mut tat, t0, 1);
        assert!(!denied.allowed);
        assert_eq!(denied.retry_after_us, S);
        assert_eq!(denied.reset_after_us, 3 * S);
        assert!(!tb.check(&mut tat, t0 + S - 1, 1).allowed);
        assert!(tb.check(&mut tat, t0 + S, 1).allowed);
        // After a long pause the bucket is full again, never fuller.
        let o = tb.check(&mut tat, t0 + 100 * S, 0);
        assert_eq!(o.remaining, 3);
    }

    #[test]
    fn cost_larger_than_burst_never_fits_and_refund_restores() {
        let tb = TokenBucket::new(5, 5 * S, 5);
        let mut tat = 0;
        assert!(!tb.check(&mut tat, S, 6).allowed);
        let o = tb.check(&mut tat, S, 4);
        assert!(o.allowed);
        assert_eq!(o.remaining, 1);
        tb.refund(&mut tat, o.receipt.unwrap(), 4, S);
        assert_eq!(tb.check(&mut tat, S, 0).remaining, 5);
    }

    #[test]
    fn interval_rounds_up() {
        let tb = TokenBucket::new(3, S, 3);
        assert_eq!(tb.interval_us(), 333_334);
    }

    #[test]
    fn a_lower_burst_never_owes_more_than_the_new_bucket() {
        // 100 per 100 s, bursts of 100, all spent at once.
        let before = TokenBucket::new(100, 100 * S, 100);
        let mut tat = 0;
        let t0 = 1_000 * S;
        assert!(before.check(&mut tat, t0, 100).allowed);
        assert_eq!(tat, t0 + 100 * S);
        // Burst lowered to 2: the bucket is empty, not 100 s in debt.
        let after = TokenBucket::new(100, 100 * S, 2);
        let denied = after.check(&mut tat, t0, 1);
        assert!(!denied.allowed);
        assert_eq!(denied.reset_after_us, 2 * S);
        assert_eq!(denied.retry_after_us, S);
        assert_eq!(tat, t0 + 2 * S);
        assert!(after.check(&mut tat, t0 + S, 1).allowed);
    }

    #[test]
    fn a_longer_interval_keeps_the_debt_within_the_bucket() {
        let before = TokenBucket::new(10, S, 10);
        let mut tat = 0;
        let t0 = 1_000 * S;
        assert!(before.check(&mut tat, t0, 10).allowed);
        // Same bucket, ten times slower: 10 tokens of 1 s each.
        let after = TokenBucket::new(10, 10 * S, 10);
        let peek = after.check(&mut tat, t0, 0);
        assert_eq!(peek.remaining, 9);
        // A bigger burst and interval: the old debt fits, kept as it is.
        let wider = TokenBucket::new(1, 100 * S, 1);
        let mut tat2 = t0 + 5 * S;
        wider.check(&mut tat2, t0, 0);
        assert_eq!(tat2, t0 + 5 * S);
    }
}
