//! The journal of what the fallback admitted, by counter and window, so it
//! can be added to the primary's counters once the primary is back
//! (`fixed_window` and `sliding_window` policies: their state is a count per
//! window, so adding is exact; the other algorithms are not journaled).
//! Bounded: at most [`MAX_ENTRIES`] (counter, window) entries; charges to
//! new entries beyond that are not journaled (counted in
//! `floodgate_reconcile_dropped_total`).

use std::collections::HashMap;

use floodgate_core::{AlgorithmKind, Policy};
use parking_lot::Mutex;

use crate::store::Reconcile;

/// Most (counter, window) entries kept.
pub(crate) const MAX_ENTRIES: usize = 100_000;

/// (counter key, whether `sliding_window` (else `fixed_window`), window µs,
/// window index).
type Slot = (String, bool, u64, u64);

/// Hits per counter window, with the time of the latest charge.
#[derive(Default)]
pub(crate) struct Journal {
    entries: Mutex<HashMap<Slot, (u64, u64)>>,
}

/// The journal slot of a charge of `policy` on `key` at `at_us`, when its
/// algorithm is journaled.
fn slot(policy: &Policy, key: &str, at_us: u64) -> Option<Slot> {
    let kind = policy.kind();
    let window = policy.window_us();
    // Calendar windows are not multiples of a window: not reconciled.
    let journaled = matches!(
        kind,
        AlgorithmKind::FixedWindow | AlgorithmKind::SlidingWindow
    ) && policy.calendar().is_none();
    let sliding = kind == AlgorithmKind::SlidingWindow;
    (journaled && window > 0).then(|| (key.to_string(), sliding, window, at_us / window))
}

fn kind_of(sliding: bool) -> AlgorithmKind {
    if sliding {
        AlgorithmKind::SlidingWindow
    } else {
        AlgorithmKind::FixedWindow
    }
}

impl Journal {
    /// Notes `hits` the fallback charged on `key` at `at_us`.
    pub(crate) fn add(&self, policy: &Policy, key: &str, hits: u64, at_us: u64) {
        let Some(slot) = slot(policy, key, at_us) else {
            return;
        };
        let mut entries = self.entries.lock();
        let full = entries.len() >= MAX_ENTRIES;
        match entries.get_mut(&slot) {
            Some((sum, at)) => {
                *sum = sum.saturating_add(hits);
                *at = (*at).max(at_us);
            }
            None if full => {
                metrics::counter!(floodgate_core::metric::RECONCILE_DROPPED_TOTAL).increment(hits);
            }
            None => {
                entries.insert(slot, (hits, at_us));
            }
        }
    }

    /// Takes back `hits` of a charge made at `at_us` (it was refunded).
    pub(crate) fn sub(&self, policy: &Policy, key: &str, hits: u64, at_us: u64) {
        let Some(slot) = slot(policy, key, at_us) else {
            return;
        };
        let mut entries = self.entries.lock();
        if let Some((sum, _)) = entries.get_mut(&slot) {
            *sum = sum.saturating_sub(hits);
            if *sum == 0 {
                entries.remove(&slot);
            }
        }
    }

    /// Removes and returns at most `max` entries.
    pub(crate) fn take(&self, max: usize) -> Vec<Reconcile> {
        let mut entries = self.entries.lock();
        let slots: Vec<Slot> = entries.keys().take(max).cloned().collect();
        slots
            .into_iter()
            .filter_map(|slot| {
                let (hits, at_us) = entries.remove(&slot)?;
                let (key, sliding, window_us, _) = slot;
                Some(Reconcile {
                    kind: kind_of(sliding),
                    key,
                    window_us,
                    at_us,
                    hits,
                })
            })
            .collect()
    }

    /// Puts back entries a failed pass took.
    pub(crate) fn restore(&self, charges: Vec<Reconcile>) {
        let mut entries = self.entries.lock();
        for c in charges {
            let sliding = c.kind == AlgorithmKind::SlidingWindow;
            let slot = (c.key, sliding, c.window_us, c.at_us / c.window_us.max(1));
            let entry = entries.entry(slot).or_insert((0, c.at_us));
            entry.0 = entry.0.saturating_add(c.hits);
            entry.1 = entry.1.max(c.at_us);
        }
    }

    /// Entries waiting.
    pub(crate) fn len(&self) -> usize {
        self.entries.lock().len()
    }
}
