//! The embedded store: counters in sharded in-memory maps.
//!
//! Bounded by construction: each shard holds at most `max_keys / shards`
//! counters. A new counter arriving at a full shard evicts the sampled entry
//! that expires first (an expired one when there is one), so a flood of
//! distinct keys cannot grow memory; [`LocalStore::sweep`] drops expired
//! counters in the background.
//!
//! Counters are keyed by a 128-bit keyed SipHash of the counter key, not the
//! key itself: 16 bytes per entry whatever the key's length. Two distinct
//! keys share a counter only on a 128-bit collision under a per-process
//! random key, which an attacker cannot aim for.

use std::collections::hash_map::{Entry as MapEntry, HashMap, RandomState};
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use floodgate_core::{AlgorithmKind, Clock, Outcome, Policy, State};
use parking_lot::Mutex;

use crate::store::{Refund, Source, Store, StoreOp, StoreOutcome};
use crate::StoreError;

/// Sizing of a [`LocalStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalConfig {
    /// Most counters tracked at once, over all shards.
    pub max_keys: usize,
    /// Number of independently locked shards (a power of two).
    pub shards: usize,
}

impl Default for LocalConfig {
    fn default() -> Self {
        LocalConfig {
            max_keys: 1_000_000,
            shards: 64,
        }
    }
}

/// A counter key reduced to 128 bits: (map hash, shard selector).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct KeyHash(u64, u64);

impl Hash for KeyHash {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0);
    }
}

/// One counter.
#[derive(Debug)]
struct Entry {
    /// When the state stops mattering (epoch µs); swept after.
    expires_us: u64,
    /// The algorithm's state.
    state: State,
}

/// The first word of a [`KeyHash`] is already a keyed hash: use it as is.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `KeyHash` is hashed here, through `write_u64`; stay correct
        // for anything else all the same.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Shard = HashMap<KeyHash, Entry, BuildHasherDefault<PassThrough>>;

/// The in-memory store. Cheap to share: wrap it in an `Arc`.
pub struct LocalStore {
    /// Independently locked maps; a counter lives in exactly one.
    shards: Box<[Mutex<Shard>]>,
    /// `shards.len() - 1`.
    shard_mask: usize,
    /// Most counters one shard may hold.
    shard_cap: usize,
    /// Keys of the two 64-bit hashes making a [`KeyHash`].
    hashers: (RandomState, RandomState),
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
        let shards = config.shards.max(1).next_power_of_two();
        let shard_cap = config.max_keys.div_ceil(shards).max(1);
        LocalStore {
            shards: (0..shards).map(|_| Mutex::new(Shard::default())).collect(),
            shard_mask: shards - 1,
            shard_cap,
            hashers: (RandomState::new(), RandomState::new()),
            clock,
            source,
            evictions: AtomicU64::new(0),
            last_full_warning_us: AtomicU64::new(0),
        }
    }

    fn hash(&self, key: &str) -> KeyHash {
        KeyHash(self.hashers.0.hash_one(key), self.hashers.1.hash_one(key))
    }

    fn shard(&self, hash: &KeyHash) -> &Mutex<Shard> {
        &self.shards[(hash.1 as usize) & self.shard_mask]
    }

    /// Decides one op synchronously (the local store never waits).
    pub fn check_one(&self, policy: &Policy, key: &str, hits: u64) -> Outcome {
        let now = self.clock.now_us();
        let nonce = if policy.kind() == AlgorithmKind::Concurrency {
            rand::random()
        } else {
            0
        };
        let hash = self.hash(key);
        let algorithm = policy.algorithm();
        let mut shard = self.shard(&hash).lock();
        if let Some(entry) = shard.get_mut(&hash) {
            let outcome = algorithm.check(&mut entry.state, now, hits, nonce);
            entry.expires_us = algorithm.expires_at(&entry.state);
            return outcome;
        }
        let mut state = State::default();
        let outcome = algorithm.check(&mut state, now, hits, nonce);
        if outcome.receipt.is_some() {
            if shard.len() >= self.shard_cap {
                Self::evict_one(&mut shard, now);
                drop(shard);
                self.note_full(now);
                shard = self.shard(&hash).lock();
            }
            let expires_us = algorithm.expires_at(&state);
            shard.insert(hash, Entry { expires_us, state });
        }
        outcome
    }

    /// Drops the sampled entry that expires first.
    fn evict_one(shard: &mut Shard, now: u64) {
        const SAMPLE: usize = 8;
        let victim = shard
            .iter()
            .take(SAMPLE)
            .min_by_key(|(_, e)| e.expires_us.max(now))
            .map(|(k, _)| *k);
        if let Some(k) = victim {
            shard.remove(&k);
        }
    }

    fn note_full(&self, now: u64) {
        self.evictions.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("floodgate_local_evictions_total").increment(1);
        let last = self.last_full_warning_us.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= 60_000_000
            && self
                .last_full_warning_us
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                max_keys = self.shard_cap * self.shards.len(),
                evictions = self.evictions.load(Ordering::Relaxed),
                "local store is full: evicting the counters closest to expiry; raise [store.local] max_keys if this persists"
            );
        }
    }

    /// Undoes one charge synchronously.
    pub fn refund_one(&self, refund: &Refund<'_>) {
        let hash = self.hash(refund.key);
        let mut shard = self.shard(&hash).lock();
        if let MapEntry::Occupied(mut slot) = shard.entry(hash) {
            let algorithm = refund.policy.algorithm();
            let entry = slot.get_mut();
            algorithm.refund(
                &mut entry.state,
                refund.receipt,
                refund.hits,
                self.clock.now_us(),
            );
            entry.expires_us = algorithm.expires_at(&entry.state);
        }
    }

    /// Drops every expired counter and returns how many remain. Call it
    /// periodically; each shard is locked only for its own pass.
    pub fn sweep(&self) -> usize {
        let now = self.clock.now_us();
        let mut remaining = 0;
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            shard.retain(|_, e| e.expires_us > now);
            remaining += shard.len();
        }
        metrics::gauge!("floodgate_local_keys").set(remaining as f64);
        remaining
    }

    /// Counters tracked right now (expired ones not yet swept included).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
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

#[async_trait]
impl Store for LocalStore {
    async fn check(&self, ops: &[StoreOp<'_>]) -> Result<Vec<StoreOutcome>, StoreError> {
        Ok(ops
            .iter()
            .map(|op| StoreOutcome {
                outcome: self.check_one(op.policy, op.key, op.hits),
                source: self.source,
            })
            .collect())
    }

    async fn refund(&self, refunds: &[Refund<'_>]) -> Result<(), StoreError> {
        for refund in refunds {
            self.refund_one(refund);
        }
        Ok(())
    }

    fn mode(&self) -> Source {
        self.source
    }
}

#[cfg(test)]
mod tests;
