//! Space-Saving (Metwally, Agrawal, El Abbadi, 2005): the heaviest keys of
//! a stream in a fixed number of counters.
//!
//! The sketch holds at most `capacity` (key, count, error) entries. A key
//! already held adds its weight; a new key takes a free entry, or else
//! evicts the entry with the smallest count and inherits that count as its
//! `error`. With `N` the total weight seen:
//!
//! - a held key's `count` over-estimates its true weight by at most its
//!   `error`, and `error ≤ min count ≤ N / capacity`;
//! - a key not held has a true weight of at most the smallest held count
//!   (so ≤ `N / capacity`): every key heavier than `N / capacity` is held.
//!
//! The entries sit in a binary min-heap on `count`, with a map from key to
//! heap slot, so each observation costs `O(log capacity)` and memory is
//! `capacity` entries whatever the number of distinct keys.

use std::collections::HashMap;

use foldhash::quality::RandomState;

/// One held key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key.
    pub key: Box<str>,
    /// Estimated weight: at least the true weight, at most `error` more.
    pub count: u64,
    /// How much of `count` may have been inherited from evicted keys.
    pub error: u64,
}

/// A Space-Saving sketch of bounded size (see the module documentation).
#[derive(Debug, Clone)]
pub struct SpaceSaving {
    /// Most entries held.
    capacity: usize,
    /// Min-heap on `count`.
    heap: Vec<Entry>,
    /// Key → index in `heap`, hashed with a per-sketch random seed
    /// (foldhash: a few times faster than std's SipHash on short keys).
    slots: HashMap<Box<str>, usize, RandomState>,
    /// Total weight observed.
    total: u64,
}

impl SpaceSaving {
    /// An empty sketch holding at most `capacity` keys (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        SpaceSaving {
            capacity,
            heap: Vec::with_capacity(capacity),
            slots: HashMap::with_capacity_and_hasher(capacity, RandomState::default()),
            total: 0,
        }
    }

    /// Most keys held.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Total weight observed.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The smallest held count when the sketch is full (an upper bound on
    /// the true weight of any key not held), else 0.
    pub fn floor(&self) -> u64 {
        if self.heap.len() < self.capacity {
            0
        } else {
            self.heap.first().map_or(0, |e| e.count)
        }
    }

    /// Adds `weight` to `key`.
    pub fn observe(&mut self, key: &str, weight: u64) {
        if weight == 0 {
            return;
        }
        self.total = self.total.saturating_add(weight);
        if let Some(&i) = self.slots.get(key) {
            self.heap[i].count = self.heap[i].count.saturating_add(weight);
            self.sift_down(i);
            return;
        }
        let key: Box<str> = key.into();
        if self.heap.len() < self.capacity {
            let i = self.heap.len();
            self.slots.insert(key.clone(), i);
            self.heap.push(Entry {
                key,
                count: weight,
                error: 0,
            });
            self.sift_up(i);
            return;
        }
        // Full: the lightest entry (the root) gives its place.
        let floor = self.heap[0].count;
        self.slots.remove(&self.heap[0].key);
        self.slots.insert(key.clone(), 0);
        self.heap[0] = Entry {
            key,
            count: floor.saturating_add(weight),
            error: floor,
        };
        self.sift_down(0);
    }

    /// The entry of `key`, if held.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.slots.get(key).map(|&i| &self.heap[i])
    }

    /// Every held entry, in no particular order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.heap.iter()
    }

    /// Forgets everything (keeps the allocation).
    pub fn clear(&mut self) {
        self.heap.clear();
        self.slots.clear();
        self.total = 0;
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        for i in [a, b] {
            if let Some(slot) = self.slots.get_mut(&self.heap[i].key) {
                *slot = i;
            }
        }
    }

    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.heap[parent].count <= self.heap[i].count {
                break;
            }
            self.swap(parent, i);
            i = parent;
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut smallest = i;
            for child in [l, r] {
                if child < self.heap.len() && self.heap[child].count < self.heap[smallest].count {
                    smallest = child;
                }
            }
            if smallest == i {
                return;
            }
            self.swap(i, smallest);
            i = smallest;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_every_key_while_there_is_room() {
        let mut s = SpaceSaving::new(3);
        for (k, w) in [("a", 5), ("b", 1), ("a", 2), ("c", 3)] {
            s.observe(k, w);
        }
        assert_eq!(s.get("a").map(|e| (e.count, e.error)), Some((7, 0)));
        assert_eq!(s.get("b").map(|e| (e.count, e.error)), Some((1, 0)));
        assert_eq!(s.floor(), 1);
        assert_eq!(s.total(), 11);
        s.observe("z", 0);
        assert!(s.get("z").is_none(), "a weight of 0 adds nothing");
    }

    #[test]
    fn a_new_key_evicts_the_lightest_and_inherits_its_count() {
        let mut s = SpaceSaving::new(2);
        s.observe("heavy", 10);
        s.observe("light", 2);
        s.observe("new", 1);
        assert!(s.get("light").is_none());
        let new = s.get("new").unwrap();
        assert_eq!((new.count, new.error), (3, 2));
        assert_eq!(s.get("heavy").unwrap().count, 10);
        assert_eq!(s.entries().count(), 2);
        s.clear();
        assert_eq!((s.total(), s.floor(), s.entries().count()), (0, 0, 0));
    }

    #[test]
    fn memory_stays_bounded_however_many_keys() {
        let mut s = SpaceSaving::new(16);
        for i in 0..100_000u64 {
            s.observe(&format!("k{i}"), 1);
            s.observe("hammer", 1);
        }
        assert_eq!(s.entries().count(), 16);
        assert!(s.slots.len() <= 16);
        let hammer = s.get("hammer").expect("the heavy key is held");
        assert!(hammer.count >= 100_000 && hammer.count - hammer.error <= 100_000);
        assert!(s.floor() <= s.total() / 16);
    }
}
