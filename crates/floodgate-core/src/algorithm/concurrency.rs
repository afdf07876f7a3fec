//! `concurrency`: at most `limit` in flight. An allowed check holds a lease
//! of `hits` slots until it is released or `lease_timeout` passes.

use super::needed;
use crate::outcome::{Outcome, Receipt};

/// One lease in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// The lease id (the check's nonce).
    pub id: u64,
    /// When the lease lapses if never released (epoch µs).
    pub expires_us: u64,
    /// Slots it holds.
    pub hits: u64,
}

/// Concurrency parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Concurrency {
    /// Slots in flight at most; ≥ 1.
    limit: u64,
    /// How long an unreleased lease lives, in µs; ≥ 1.
    lease_timeout_us: u64,
}

impl Concurrency {
    pub(crate) fn new(limit: u64, lease_timeout_us: u64) -> Self {
        debug_assert!(limit > 0 && lease_timeout_us > 0);
        Concurrency {
            limit: limit.max(1),
            lease_timeout_us: lease_timeout_us.max(1),
        }
    }

    pub(crate) fn check(
        &self,
        leases: &mut Vec<Lease>,
        now_us: u64,
        hits: u64,
        nonce: u64,
    ) -> Outcome {
        leases.retain(|l| l.expires_us > now_us);
        let used: u64 = leases.iter().map(|l| l.hits).sum();
        let allowed = used.saturating_add(needed(hits)) <= self.limit;
        let mut receipt = None;
        if allowed && hits > 0 {
            leases.push(Lease {
                id: nonce,
                expires_us: now_us + self.lease_timeout_us,
                hits,
            });
            receipt = Some(Receipt {
                at_us: now_us,
                id: nonce,
            });
        }
        let held: u64 = leases.iter().map(|l| l.hits).sum();
        let first_expiry = leases.iter().map(|l| l.expires_us).min();
        let reset_after_us = first_expiry.map_or(0, |t| t - now_us);
        let retry_after_us = if allowed {
            0
        } else {
            self.retry_after(leases, now_us, held, needed(hits))
        };
        Outcome {
            allowed,
            limit: self.limit,
            remaining: self.limit.saturating_sub(held),
            reset_after_us,
            retry_after_us,
            receipt,
        }
    }

    /// When enough leases will have lapsed for `need` slots (assuming none
    /// is released before): the latest lapse if `need` exceeds the limit.
    fn retry_after(&self, leases: &[Lease], now_us: u64, held: u64, need: u64) -> u64 {
        let mut expiries: Vec<(u64, u64)> = leases.iter().map(|l| (l.expires_us, l.hits)).collect();
        expiries.sort_unstable();
        let must_free = (held + need).saturating_sub(self.limit);
        let mut freed = 0;
        for (expires_us, hits) in &expiries {
            freed += hits;
            if freed >= must_free {
                return (expires_us - now_us).max(1);
            }
        }
        expiries.last().map_or(1, |(t, _)| (t - now_us).max(1))
    }

    pub(crate) fn release(leases: &mut Vec<Lease>, id: u64) {
        leases.retain(|l| l.id != id);
    }

    pub(crate) fn expires_at(leases: &[Lease]) -> u64 {
        leases.iter().map(|l| l.expires_us).max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000;

    #[test]
    fn leases_hold_slots_until_released_or_expired() {
        let c = Concurrency::new(2, 60 * S);
        let mut leases = Vec::new();
        let a = c.check(&mut leases, 0, 1, 11).receipt.unwrap();
        assert!(c.check(&mut leases, 0, 1, 12).allowed);
        let denied = c.check(&mut leases, S, 1, 13);
        assert!(!denied.allowed);
        assert_eq!(denied.retry_after_us, 59 * S);
        Concurrency::release(&mut leases, a.id);
        assert!(c.check(&mut leases, S, 1, 14).allowed);
        assert!(!c.check(&mut leases, S, 1, 15).allowed);
        // Lease 12 lapses at 60 s, lease 14 at 61 s.
        assert!(c.check(&mut leases, 60 * S, 1, 16).allowed);
        assert!(!c.check(&mut leases, 60 * S, 1, 17).allowed);
    }

    #[test]
    fn weighted_leases_and_peek() {
        let c = Concurrency::new(5, S);
        let mut leases = Vec::new();
        assert!(c.check(&mut leases, 0, 4, 1).allowed);
        assert!(!c.check(&mut leases, 0, 2, 2).allowed);
        let peek = c.check(&mut leases, 0, 0, 3);
        assert!(peek.allowed);
        assert_eq!(peek.remaining, 1);
        assert_eq!(leases.len(), 1);
    }
}
