//! Reservations in the local store: a check that reserves leaves a record
//! (the estimate and the receipt of its charge) in a bounded map of its
//! own, named by the counter key and the reservation's nonce; a settle
//! marks the record settled under its shard's lock — so only one settle
//! ever applies it — then applies the difference to the counter. The
//! settled record stays until it lapses, so a second settle is told apart
//! from a forged id.
//!
//! A record lapses two windows after its check (see [`reservation_ttl_us`]); the
//! map is bounded like the counters' (a full shard evicts the record that
//! lapses first: that reservation keeps its estimate, as an unsettled one
//! does).

use floodgate_core::{Outcome, Policy, Reservation, State};

use super::{Entry, LocalStore};
use crate::shards::Expiring;
use crate::store::{Settle, Settled, StoreOp};

/// One reservation, until it lapses.
#[derive(Debug, Clone, Copy)]
pub(super) struct Record {
    /// What the check charged.
    reservation: Reservation,
    /// Whether it has been settled (a marker from then on).
    settled: bool,
}

impl Expiring for Record {
    fn expires_us(&self) -> u64 {
        self.reservation.expires_us
    }
}

/// When a counter was cleared by an admin reset.
#[derive(Debug, Clone, Copy)]
pub(super) struct Cleared {
    /// When (epoch µs).
    at_us: u64,
    /// Until when a reservation charged before may still be settled.
    expires_us: u64,
}

impl Expiring for Cleared {
    fn expires_us(&self) -> u64 {
        self.expires_us
    }
}

/// How long a reservation can be settled after its check: two windows of
/// its policy (a call that starts late in a window and ends in the next
/// one still settles; for `sliding_window`, as long as its charge weighs).
pub fn reservation_ttl_us(policy: &Policy) -> u64 {
    policy.window_us().saturating_mul(2)
}

/// The map key of a reservation's record.
fn record_name(key: &str, nonce: u128) -> String {
    format!("{key}/{nonce:032x}")
}

impl LocalStore {
    /// Keeps the record of `op` when it reserved and `outcome` charged it.
    pub(super) fn keep_reservation(&self, op: &StoreOp<'_>, outcome: &Outcome) {
        let (Some(nonce), Some(receipt)) = (op.reserve, outcome.receipt) else {
            return;
        };
        if !op.policy.settle() {
            return;
        }
        let record = Record {
            reservation: Reservation {
                estimate: op.hits,
                receipt,
                expires_us: receipt.at_us.saturating_add(reservation_ttl_us(op.policy)),
            },
            settled: false,
        };
        let hash = self.reservations.hash(&record_name(op.key, nonce));
        let mut shard = self.reservations.lock(&hash);
        self.reservations
            .insert(&mut shard, hash, record, receipt.at_us);
    }

    /// Remembers that `key` of `policy` was cleared now.
    pub(super) fn note_cleared(&self, policy: &Policy, key: &str) {
        let now = self.clock.now_us();
        let cleared = Cleared {
            at_us: now,
            expires_us: now.saturating_add(reservation_ttl_us(policy)),
        };
        let hash = self.cleared.hash(key);
        let mut shard = self.cleared.lock(&hash);
        self.cleared.insert(&mut shard, hash, cleared, now);
    }

    /// Whether a charge made at `at_us` on `key` was wiped by a reset.
    fn cleared_since(&self, key: &str, at_us: u64, now: u64) -> bool {
        let hash = self.cleared.hash(key);
        let shard = self.cleared.lock(&hash);
        shard
            .get(&hash)
            .is_some_and(|c| c.expires_us > now && at_us < c.at_us)
    }

    /// Settles one reservation synchronously.
    pub fn settle_one(&self, settle: &Settle<'_>) -> Settled {
        let now = self.clock.now_us();
        let reservation = match self.claim(settle, now) {
            Ok(reservation) => reservation,
            Err(settled) => return settled,
        };
        if settle.actual < reservation.estimate
            && self.cleared_since(settle.key, reservation.receipt.at_us, now)
        {
            // The charge was wiped by a reset: nothing to give back.
            return Settled::Applied {
                estimate: reservation.estimate,
            };
        }
        self.apply_difference(settle, &reservation, now);
        Settled::Applied {
            estimate: reservation.estimate,
        }
    }

    /// Marks the record of `settle` settled and returns what its check
    /// charged; or why it cannot be settled (lapsed, spent, unknown).
    fn claim(&self, settle: &Settle<'_>, now: u64) -> Result<Reservation, Settled> {
        let lapses_us = settle
            .issued_us
            .saturating_add(reservation_ttl_us(settle.policy));
        let absent = if lapses_us <= now {
            Settled::Lapsed
        } else {
            Settled::Unknown
        };
        let hash = self
            .reservations
            .hash(&record_name(settle.key, settle.nonce));
        let mut shard = self.reservations.lock(&hash);
        match shard.get_mut(&hash) {
            Some(record) if record.reservation.expires_us <= now => {
                shard.remove(&hash);
                Err(Settled::Lapsed)
            }
            Some(record) if record.settled => Err(Settled::Spent),
            Some(record) => {
                record.settled = true;
                Ok(record.reservation)
            }
            None => Err(absent),
        }
    }

    /// Applies the difference between `settle.actual` and the estimate of
    /// `reservation` to the counter.
    fn apply_difference(&self, settle: &Settle<'_>, reservation: &Reservation, now: u64) {
        let algorithm = settle.policy.algorithm();
        let hash = self.counters.hash(settle.key);
        let mut shard = self.counters.lock(&hash);
        match shard.get_mut(&hash) {
            Some(entry) => {
                algorithm.settle(&mut entry.state, reservation, settle.actual, now);
                entry.expires_us = algorithm.expires_at(&entry.state);
            }
            // The counter lapsed or was evicted: a refund has nothing to
            // give back; an overrun starts it again.
            None if settle.actual > reservation.estimate => {
                let mut state = State::default();
                algorithm.settle(&mut state, reservation, settle.actual, now);
                let expires_us = algorithm.expires_at(&state);
                let evicted =
                    self.counters
                        .insert(&mut shard, hash, Entry { expires_us, state }, now);
                drop(shard);
                if evicted {
                    self.note_full(now);
                }
            }
            None => {}
        }
    }

    /// Reservation records kept right now (lapsed ones not yet swept
    /// included).
    pub fn reservations(&self) -> usize {
        self.reservations.len()
    }
}

#[cfg(test)]
mod tests;
