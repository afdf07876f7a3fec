//! The embedded store: counters in a bounded, sharded in-memory map.
//!
//! Bounded by construction (see [`ShardedMap`]): a new counter arriving at a
//! full shard evicts the sampled counter that expires first, so a flood of
//! distinct keys cannot grow memory; [`LocalStore::sweep`] drops expired
//! counters in the background. Counters are named by a 128-bit keyed hash of
//! their key.

use std::collections::hash_map::Entry as MapEntry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use floodgate_core::{AlgorithmKind, Clock, Outcome, Policy, State};

use crate::shards::{Expiring, ShardedMap};
use crate::store::{Clear, Refund, Settle, Settled, Source, Store, StoreOp, StoreOutcome};
use crate::StoreError;

/// Sizing of a [`LocalStore`]: the shared type `[store.local]` is read
/// into.
pub use floodgate_core::store_config::LocalConfig;

/// One counter.
#[derive(Debug)]
struct Entry {
    /// When the state stops mattering (epoch µs); swept after.
    expires_us: u64,
    /// The algorithm's state.
    state: State,
}

impl Expiring for Entry {
    fn expires_us(&self) -> u64 {
        self.expires_us
    }

    /// A counter of fixed size is 1; a `sliding_log` or `concurrency`
    /// counter also counts its entries, 16 to a unit (an 8-byte timestamp
    /// each, ~16 bytes with the queue's spare room), so `max_keys` bounds
    /// their memory too (see [`ShardedMap`]).
    fn weight(&self) -> usize {
        let entries = match &self.state {
            State::Log(log) => log.len(),
            State::Leases(leases) => leases.len(),
            _ => 0,
        };
        1 + entries / 16
    }
}

/// The in-memory store. Cheap to share: wrap it in an `Arc`.
pub struct LocalStore {
    /// The counters.
    counters: ShardedMap<Entry>,
    /// Records of reservations not yet settled (see `local/settle.rs`).
    reservations: ShardedMap<settle::Record>,
    /// Lockout records by counter key (see `local/block.rs`).
    blocks: ShardedMap<block::Held>,
    /// When settleable counters were last cleared by an admin reset, while
    /// a reservation charged before may still be settled.
    cleared: ShardedMap<settle::Cleared>,
    /// Time source (monotonic, epoch aligned).
    clock: Arc<dyn Clock>,
    /// What this store reports as the source of its decisions.
    source: Source,
    /// Counters evicted because a shard was full.
    evictions: AtomicU64,
    /// When the "full" warning was last logged (epoch µs), to log it at most
    /// once a minute.
    last_full_warning_us: AtomicU64,
}

impl LocalStore {
    /// A store sized by `config`, reading time from `clock`, reporting its
    /// decisions as `source` (`Local` as the configured store, `Fallback` as
    /// the failover store's stand-in).
    pub fn new(config: LocalConfig, clock: Arc<dyn Clock>, source: Source) -> Self {
        LocalStore {
            counters: ShardedMap::new(config.max_keys, config.shards),
            reservations: ShardedMap::new(config.max_keys, config.shards),
            blocks: ShardedMap::new(config.max_keys, config.shards),
            cleared: ShardedMap::new(config.max_keys, config.shards),
            clock,
            source,
            evictions: AtomicU64::new(0),
            last_full_warning_us: AtomicU64::new(0),
        }
    }

    /// Decides one op synchronously (the local store never waits),
    /// charging it when allowed.
    pub fn check_one(&self, policy: &Policy, key: &str, hits: u64) -> Outcome {
        self.decide(policy, key, hits, true)
    }

    /// Decides one op as [`LocalStore::check_one`] would, charging nothing
    /// (the outcome has no receipt).
    pub fn decide_one(&self, policy: &Policy, key: &str, hits: u64) -> Outcome {
        self.decide(policy, key, hits, false)
    }

    fn decide(&self, policy: &Policy, key: &str, hits: u64, charge: bool) -> Outcome {
        let now = self.clock.now_us();
        if policy.block().is_on() {
            if let Some(denied) = self.blocked_now(policy, key, now) {
                return denied;
            }
            let outcome = self.decide_at(policy, key, hits, charge, now);
            return self.maybe_block(policy, key, hits, outcome, now);
        }
        self.decide_at(policy, key, hits, charge, now)
    }

    fn decide_at(&self, policy: &Policy, key: &str, hits: u64, charge: bool, now: u64) -> Outcome {
        let nonce = if policy.kind() == AlgorithmKind::Concurrency {
            rand::random()
        } else {
            0
        };
        let hash = self.counters.hash(key);
        let algorithm = policy.algorithm();
        let mut shard = self.counters.lock(&hash);
        if let Some(entry) = shard.get_mut(&hash) {
            if !charge {
                let mut copy = entry.state.clone();
                return uncharged(algorithm.check(&mut copy, now, hits, nonce));
            }
            let outcome = algorithm.check(&mut entry.state, now, hits, nonce);
            entry.expires_us = algorithm.expires_at(&entry.state);
            return outcome;
        }
        let mut state = State::default();
        let outcome = algorithm.check(&mut state, now, hits, nonce);
        if !charge {
            return uncharged(outcome);
        }
        if outcome.receipt.is_some() {
            let expires_us = algorithm.expires_at(&state);
            let evicted = self
                .counters
                .insert(&mut shard, hash, Entry { expires_us, state }, now);
            drop(shard);
            if evicted {
                self.note_full(now);
            }
        }
        outcome
    }

    fn note_full(&self, now: u64) {
        self.evictions.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(floodgate_core::metric::LOCAL_EVICTIONS_TOTAL).increment(1);
        let last = self.last_full_warning_us.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= 60_000_000
            && self
                .last_full_warning_us
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                max_keys = self.counters.capacity(),
                evictions = self.evictions.load(Ordering::Relaxed),
                "local store is full: evicting the counters closest to expiry; raise [store.local] max_keys if this persists"
            );
        }
    }

    /// Undoes one charge synchronously.
    pub fn refund_one(&self, refund: &Refund<'_>) {
        let hash = self.counters.hash(refund.key);
        let mut shard = self.counters.lock(&hash);
        if let MapEntry::Occupied(mut slot) = shard.entry(hash) {
            let algorithm = refund.policy.algorithm();
            let entry = slot.get_mut();
            algorithm.refund(
                &mut entry.state,
                refund.receipt,
                refund.hits,
                self.clock.now_us(),
            );
            // A refund never lengthens a counter's life; and a state counted
            // under other parameters (before a reload) must not be given an
            // expiry computed from the new ones.
            entry.expires_us = entry.expires_us.min(algorithm.expires_at(&entry.state));
        }
    }

    /// Drops the counter `key` (leases included) and its lockout;
    /// harmless when absent.
    fn remove(&self, key: &str) {
        let hash = self.counters.hash(key);
        self.counters.lock(&hash).remove(&hash);
        self.clear_block(key);
    }

    /// Clears one counter (an admin reset): drops it, and remembers when
    /// for as long as a reservation charged before may be settled.
    pub fn clear_one(&self, clear: &Clear<'_>) {
        self.remove(clear.key);
        if clear.policy.settle() {
            self.note_cleared(clear.policy, clear.key);
        }
    }

    /// Drops every expired counter and returns how many remain. Call it
    /// periodically; each shard is locked only for its own pass.
    pub fn sweep(&self) -> usize {
        let now = self.clock.now_us();
        self.reservations.sweep(now);
        self.blocks.sweep(now);
        self.cleared.sweep(now);
        let remaining = self.counters.sweep(now);
        metrics::gauge!(floodgate_core::metric::LOCAL_KEYS).set(remaining as f64);
        remaining
    }

    /// Counters tracked right now (expired ones not yet swept included).
    pub fn len(&self) -> usize {
        self.counters.len()
    }

    /// Whether no counter is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counters evicted because the store was full, since start.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }
}

/// An outcome as decided, with nothing charged.
fn uncharged(outcome: Outcome) -> Outcome {
    Outcome {
        receipt: None,
        ..outcome
    }
}

#[async_trait]
impl Store for LocalStore {
    async fn check(&self, ops: &[StoreOp<'_>]) -> Result<Vec<StoreOutcome>, StoreError> {
        Ok(ops
            .iter()
            .map(|op| {
                let outcome = self.decide(op.policy, op.key, op.hits, op.charge);
                self.keep_reservation(op, &outcome);
                StoreOutcome {
                    outcome,
                    source: self.source,
                }
            })
            .collect())
    }

    async fn settle(&self, settles: &[Settle<'_>]) -> Result<Vec<Settled>, StoreError> {
        Ok(settles.iter().map(|s| self.settle_one(s)).collect())
    }

    async fn refund(&self, refunds: &[Refund<'_>]) -> Result<(), StoreError> {
        for refund in refunds {
            self.refund_one(refund);
        }
        Ok(())
    }

    async fn clear(&self, clears: &[Clear<'_>]) -> Result<(), StoreError> {
        for clear in clears {
            self.clear_one(clear);
        }
        Ok(())
    }

    fn forget(&self, keys: &[&str]) {
        for key in keys {
            self.remove(key);
        }
    }

    fn mode(&self) -> Source {
        self.source
    }
}

mod block;
mod settle;
pub use settle::reservation_ttl_us;

#[cfg(test)]
mod tests;
