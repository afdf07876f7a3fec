//! [`ShardedMap`]: the bounded, sharded map behind the local store and the
//! deny cache.
//!
//! Entries are keyed by a 128-bit hash of a string key, not the key itself:
//! 16 bytes per entry whatever the key's length. The hash is two foldhash
//! passes with per-process random seeds: two distinct keys share an entry
//! (and so a counter) only when both 64-bit halves collide. foldhash is a
//! fast hash, not a keyed cryptographic one, and says so: finding such a
//! pair without ever seeing a hash (only allow/deny answers) is not a known
//! attack, but unlike SipHash it is no proof against one. Two SipHash
//! passes cost about 13 ns of a local check (126 → 113 ns, against a budget
//! is 100 ns). Each shard holds at most `max / shards`
//! entries; a new entry arriving at a full shard evicts the sampled entry
//! that expires first (an expired one when there is one), so a flood of
//! distinct keys cannot grow memory. Entries that grow ([`Expiring::weight`]
//! above 1) count by their weight: each sweep evicts the entries closest to
//! expiry from a shard whose total weight is above its share, so growing
//! entries cannot grow memory past the budget either (between two sweeps,
//! by at most what the hits admitted meanwhile added).

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};

use foldhash::quality::RandomState;
use parking_lot::{Mutex, MutexGuard};

/// What a [`ShardedMap`] needs of its values: when they stop mattering,
/// and how much of the map's budget they take.
pub(crate) trait Expiring {
    /// Epoch µs after which the entry may be dropped.
    fn expires_us(&self) -> u64;

    /// The entry's share of the budget, in entries (≥ 1): 1 for a value of
    /// fixed size; more for one that grows (a `sliding_log` counter).
    fn weight(&self) -> usize {
        1
    }
}

/// A key reduced to 128 bits: (map hash, shard selector).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyHash(u64, u64);

impl Hash for KeyHash {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0);
    }
}

/// The first word of a [`KeyHash`] is already a keyed hash: use it as is.
#[derive(Default)]
pub(crate) struct PassThrough(u64);

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

/// One shard's map.
pub(crate) type Shard<V> = HashMap<KeyHash, V, BuildHasherDefault<PassThrough>>;

/// A map split over independently locked shards, bounded in entries.
pub(crate) struct ShardedMap<V> {
    /// The shards; an entry lives in exactly one.
    shards: Box<[Mutex<Shard<V>>]>,
    /// `shards.len() - 1`.
    shard_mask: usize,
    /// Most entries one shard may hold.
    shard_cap: usize,
    /// Seeds of the two 64-bit hashes making a [`KeyHash`].
    hashers: (RandomState, RandomState),
}

impl<V: Expiring> ShardedMap<V> {
    /// A map of at most about `max_entries` (rounded up to a multiple of the
    /// shard count) over `shards` shards (rounded up to a power of two).
    pub(crate) fn new(max_entries: usize, shards: usize) -> Self {
        let shards = shards.max(1).next_power_of_two();
        ShardedMap {
            shards: (0..shards).map(|_| Mutex::new(Shard::default())).collect(),
            shard_mask: shards - 1,
            shard_cap: max_entries.div_ceil(shards).max(1),
            hashers: (RandomState::default(), RandomState::default()),
        }
    }

    /// The 128-bit hash naming `key`'s entry.
    pub(crate) fn hash(&self, key: &str) -> KeyHash {
        KeyHash(self.hashers.0.hash_one(key), self.hashers.1.hash_one(key))
    }

    /// Locks the shard holding `hash`. Hold it only for map work.
    pub(crate) fn lock(&self, hash: &KeyHash) -> MutexGuard<'_, Shard<V>> {
        self.shards[(hash.1 as usize) & self.shard_mask].lock()
    }

    /// Inserts into the locked `shard` (the one [`ShardedMap::lock`] gave
    /// for `hash`). A full shard first drops the sampled entry that expires
    /// first; returns whether it had to.
    pub(crate) fn insert(&self, shard: &mut Shard<V>, hash: KeyHash, value: V, now: u64) -> bool {
        let evicted = shard.len() >= self.shard_cap && !shard.contains_key(&hash);
        if evicted {
            const SAMPLE: usize = 8;
            let victim = shard
                .iter()
                .take(SAMPLE)
                .min_by_key(|(_, v)| v.expires_us().max(now))
                .map(|(k, _)| *k);
            if let Some(k) = victim {
                shard.remove(&k);
            }
        }
        shard.insert(hash, value);
        evicted
    }

    /// Drops every entry expired at `now` and returns how many remain; each
    /// shard is locked only for its own pass.
    pub(crate) fn sweep(&self, now: u64) -> usize {
        let mut remaining = 0;
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            shard.retain(|_, v| v.expires_us() > now);
            self.shed_weight(&mut shard);
            remaining += shard.len();
        }
        remaining
    }

    /// Evicts the entries closest to expiry until the shard's total weight
    /// is within its share; returns how many it evicted.
    fn shed_weight(&self, shard: &mut Shard<V>) -> usize {
        let mut weight: usize = shard.values().map(Expiring::weight).sum();
        if weight <= self.shard_cap {
            return 0;
        }
        let mut by_expiry: Vec<(u64, KeyHash, usize)> = shard
            .iter()
            .map(|(k, v)| (v.expires_us(), *k, v.weight()))
            .collect();
        by_expiry.sort_unstable_by_key(|(expires, _, _)| *expires);
        let mut evicted = 0;
        for (_, key, w) in by_expiry {
            if weight <= self.shard_cap {
                break;
            }
            shard.remove(&key);
            weight -= w;
            evicted += 1;
        }
        metrics::counter!(floodgate_core::metric::LOCAL_EVICTIONS_TOTAL).increment(evicted as u64);
        evicted
    }

    /// Entries held right now (expired ones not yet swept included).
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// Most entries the map holds.
    pub(crate) fn capacity(&self) -> usize {
        self.shard_cap * self.shards.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A value of `weight` units expiring at `expires`.
    struct Sized(u64, usize);

    impl Expiring for Sized {
        fn expires_us(&self) -> u64 {
            self.0
        }
        fn weight(&self) -> usize {
            self.1
        }
    }

    #[test]
    fn a_sweep_sheds_weight_closest_to_expiry_first() {
        let map = ShardedMap::new(100, 1);
        for i in 0..20u64 {
            let hash = map.hash(&i.to_string());
            let mut shard = map.lock(&hash);
            // Heavy entries: 20 × 10 units in a budget of 100.
            map.insert(&mut shard, hash, Sized(1_000 + i, 10), 0);
        }
        assert_eq!(map.len(), 20, "inserts count entries, not weight");
        assert_eq!(map.sweep(0), 10, "the weight is within the budget");
        // The ones that expire last stay.
        let kept = map.hash("19");
        assert!(map.lock(&kept).contains_key(&kept));
        let gone = map.hash("0");
        assert!(!map.lock(&gone).contains_key(&gone));
        // Light entries are never shed below the count cap.
        let light: ShardedMap<Sized> = ShardedMap::new(100, 1);
        for i in 0..50u64 {
            let hash = light.hash(&i.to_string());
            let mut shard = light.lock(&hash);
            light.insert(&mut shard, hash, Sized(1_000, 1), 0);
        }
        assert_eq!(light.sweep(0), 50);
    }
}
