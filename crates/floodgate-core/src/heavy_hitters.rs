//! Who is being limited: per policy, the keys with the most denials over
//! the last minutes, in memory fixed whatever the number of keys.
//!
//! Each policy has a ring of `slots` [`SpaceSaving`] sketches of
//! `capacity` entries, each covering `slot` of time; an observation goes to
//! the sketch of its time slot, and a report merges the sketches of the
//! slots still in the window (the current one, partly elapsed, and the
//! `slots - 1` before it: the window is between `(slots - 1) × slot` and
//! `slots × slot` long).
//!
//! **Error bound.** With `N` the weight observed in the window and `m` the
//! capacity, every key's reported range `[lower, upper]` holds its true
//! weight, and `upper - lower ≤ N / m`: in each slot a held key's count
//! over-estimates by at most that slot's eviction error, and a key the slot
//! no longer holds weighed at most the slot's smallest count, both at most
//! `N_slot / m`. So every key heavier than `N / m` in the window is
//! reported, and the top-N order can only swap keys whose weights are
//! within `N / m` of each other. With `m = 64` and 10 000 denials in the
//! window, that is ±157 denials.
//!
//! **Memory.** At most `policies × slots × capacity` entries, each one key
//! of at most [`MAX_KEY_BYTES`] (longer keys are cut, at a character
//! boundary) plus about 80 bytes of bookkeeping (the key is held twice: in
//! the heap and in its index): with the defaults (5 slots of 1 minute, 64
//! entries) about 320 entries, under 400 KiB per policy for the longest
//! keys and a few tens of KiB for typical ones. A sidecar tracks at most
//! `max_policies` policies; denials of further policies are not tracked.

mod space_saving;

use std::collections::HashMap;
use std::sync::Arc;

pub use space_saving::{Entry, SpaceSaving};

/// Longest key kept, in bytes.
pub const MAX_KEY_BYTES: usize = 512;

/// The shape of the sketches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopConfig {
    /// Entries per sketch (`m`); at least 1.
    pub capacity: usize,
    /// Sketches per policy; at least 1.
    pub slots: usize,
    /// Time one sketch covers, in µs; at least 1.
    pub slot_us: u64,
    /// Most policies tracked.
    pub max_policies: usize,
}

impl Default for TopConfig {
    /// 64 entries, 5 slots of one minute, 10 000 policies.
    fn default() -> Self {
        TopConfig {
            capacity: 64,
            slots: 5,
            slot_us: 60_000_000,
            max_policies: 10_000,
        }
    }
}

/// One key of a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopEntry {
    /// The key (cut to [`MAX_KEY_BYTES`]).
    pub key: String,
    /// The estimate: the sum of the counts of the slots holding the key.
    pub count: u64,
    /// The true weight is at least this.
    pub lower: u64,
    /// The true weight is at most this.
    pub upper: u64,
}

/// The heaviest keys of one policy over the window.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TopReport {
    /// The heaviest keys, by `count` then key.
    pub entries: Vec<TopEntry>,
    /// Weight observed in the window (`N`).
    pub total: u64,
    /// `N / m` rounded up: no key's `upper - lower` exceeds it.
    pub error_bound: u64,
}

/// One policy's ring of sketches.
#[derive(Debug, Clone)]
pub struct WindowedTop {
    /// The shape.
    config: TopConfig,
    /// By position `slot % slots`: the slot number it holds, and its sketch.
    ring: Vec<(u64, SpaceSaving)>,
}

impl WindowedTop {
    /// An empty ring.
    pub fn new(config: TopConfig) -> Self {
        let config = TopConfig {
            capacity: config.capacity.max(1),
            slots: config.slots.max(1),
            slot_us: config.slot_us.max(1),
            max_policies: config.max_policies,
        };
        let ring = (0..config.slots)
            .map(|_| (u64::MAX, SpaceSaving::new(config.capacity)))
            .collect();
        WindowedTop { config, ring }
    }

    /// Adds `weight` to `key` at time `now_us`.
    pub fn observe(&mut self, now_us: u64, key: &str, weight: u64) {
        let slot = now_us / self.config.slot_us;
        let position = (slot % self.ring.len() as u64) as usize;
        let (held, sketch) = &mut self.ring[position];
        if *held != slot {
            sketch.clear();
            *held = slot;
        }
        sketch.observe(cut(key), weight);
    }

    /// The `n` heaviest keys of the window ending at `now_us`.
    pub fn top(&self, now_us: u64, n: usize) -> TopReport {
        let slot = now_us / self.config.slot_us;
        let first = slot.saturating_sub(self.ring.len() as u64 - 1);
        let live: Vec<&SpaceSaving> = (self.ring.iter())
            .filter(|(held, _)| (first..=slot).contains(held))
            .map(|(_, sketch)| sketch)
            .collect();
        let total: u64 = live.iter().map(|s| s.total()).sum();
        let floors: u64 = live.iter().map(|s| s.floor()).sum();
        // key → (count, error, floors of the slots holding it)
        let mut merged: HashMap<&str, (u64, u64, u64)> = HashMap::new();
        for sketch in &live {
            for e in sketch.entries() {
                let m = merged.entry(&e.key).or_default();
                m.0 += e.count;
                m.1 += e.error;
                m.2 += sketch.floor();
            }
        }
        let mut entries: Vec<TopEntry> = merged
            .into_iter()
            .map(|(key, (count, error, held_floors))| TopEntry {
                key: key.to_string(),
                count,
                lower: count - error,
                upper: count + (floors - held_floors),
            })
            .collect();
        entries.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
        entries.truncate(n);
        TopReport {
            entries,
            total,
            error_bound: total.div_ceil(self.config.capacity as u64),
        }
    }
}

/// A [`WindowedTop`] per policy.
#[derive(Debug, Clone, Default)]
pub struct HeavyHitters {
    /// The shape of every policy's ring.
    config: TopConfig,
    /// Policy name → its ring (seeded foldhash, as [`SpaceSaving`]).
    policies: HashMap<Arc<str>, WindowedTop, foldhash::quality::RandomState>,
}

impl HeavyHitters {
    /// No policy tracked yet.
    pub fn new(config: TopConfig) -> Self {
        HeavyHitters {
            config,
            policies: HashMap::default(),
        }
    }

    /// Counts `weight` denials of `key` by `policy` at `now_us`; nothing
    /// when `max_policies` other policies are tracked already.
    pub fn observe(&mut self, now_us: u64, policy: &Arc<str>, key: &str, weight: u64) {
        if !self.policies.contains_key(policy) {
            if self.policies.len() >= self.config.max_policies {
                return;
            }
            (self.policies).insert(policy.clone(), WindowedTop::new(self.config));
        }
        if let Some(top) = self.policies.get_mut(policy) {
            top.observe(now_us, key, weight);
        }
    }

    /// The `n` heaviest keys of `policy` over the window ending at
    /// `now_us`; empty when it has had no denial tracked.
    pub fn top(&self, now_us: u64, policy: &str, n: usize) -> TopReport {
        self.policies
            .get(policy)
            .map_or_else(TopReport::default, |t| t.top(now_us, n))
    }

    /// Stops tracking policies not in `keep` (after a reload).
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.policies.retain(|name, _| keep(name));
    }
}

/// `key` cut to [`MAX_KEY_BYTES`] at a character boundary.
fn cut(key: &str) -> &str {
    let mut end = key.len().min(MAX_KEY_BYTES);
    while !key.is_char_boundary(end) {
        end -= 1;
    }
    &key[..end]
}

#[cfg(test)]
#[path = "heavy_hitters/tests.rs"]
mod tests;
