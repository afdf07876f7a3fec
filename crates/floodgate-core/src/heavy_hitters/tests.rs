//! The windowed per-policy top: rotation, order, bounds, memory.

use std::collections::HashMap;

use proptest::prelude::*;

use super::*;

const MIN: u64 = 60_000_000;

fn config(capacity: usize, slots: usize) -> TopConfig {
    TopConfig {
        capacity,
        slots,
        slot_us: MIN,
        max_policies: 3,
    }
}

fn keys(report: &TopReport) -> Vec<(&str, u64)> {
    report
        .entries
        .iter()
        .map(|e| (e.key.as_str(), e.count))
        .collect()
}

#[test]
fn names_the_heaviest_keys_of_the_window_in_order() {
    let mut top = WindowedTop::new(config(8, 5));
    for (key, weight) in [("u1", 5), ("u2", 9), ("u3", 5), ("u4", 1)] {
        top.observe(0, key, weight);
    }
    top.observe(3 * MIN, "u4", 10);
    let report = top.top(4 * MIN, 3);
    assert_eq!(keys(&report), [("u4", 11), ("u2", 9), ("u1", 5)]);
    assert_eq!(report.total, 30);
    assert_eq!(report.error_bound, 4);
    // Exact while nothing was evicted.
    assert!(report
        .entries
        .iter()
        .all(|e| e.lower == e.count && e.upper == e.count));
}

#[test]
fn slots_older_than_the_window_are_forgotten() {
    let mut top = WindowedTop::new(config(8, 3));
    top.observe(0, "old", 100);
    top.observe(MIN, "mid", 10);
    top.observe(2 * MIN + 1, "new", 1);
    assert_eq!(
        keys(&top.top(2 * MIN + 1, 10)),
        [("old", 100), ("mid", 10), ("new", 1)]
    );
    // The window is now minutes 1..=3: minute 0 is gone, even unread.
    assert_eq!(keys(&top.top(3 * MIN, 10)), [("mid", 10), ("new", 1)]);
    // Minute 3 reuses minute 0's sketch: it starts empty.
    top.observe(3 * MIN, "newer", 2);
    assert_eq!(
        keys(&top.top(3 * MIN, 10)),
        [("mid", 10), ("newer", 2), ("new", 1)]
    );
    assert_eq!(top.top(10 * MIN, 10), TopReport::default());
}

#[test]
fn one_hammering_key_stands_out_among_a_million_others() {
    let mut top = WindowedTop::new(config(64, 5));
    for i in 0..200_000u64 {
        let now = i * 1_000; // 200 s: four slots
        top.observe(now, &format!("user-{i}"), 1);
        if i % 4 == 0 {
            top.observe(now, "attacker", 1);
        }
    }
    let report = top.top(200 * 1_000_000, 1);
    let first = &report.entries[0];
    assert_eq!(first.key, "attacker");
    assert!(first.lower <= 50_000 && 50_000 <= first.upper, "{first:?}");
    assert!(first.upper - first.lower <= report.error_bound);
    assert_eq!(report.total, 250_000);
    // Memory: slots × capacity entries, whatever the number of keys.
    let held: usize = top.ring.iter().map(|(_, s)| s.entries().count()).sum();
    assert!(held <= 5 * 64);
}

#[test]
fn per_policy_tops_are_bounded_in_number_and_keys_in_length() {
    let mut hh = HeavyHitters::new(config(4, 2));
    let p = |n: &str| -> Arc<str> { n.into() };
    for name in ["a", "b", "c", "d"] {
        hh.observe(0, &p(name), "k", 1);
    }
    assert_eq!(hh.top(0, "c", 5).total, 1);
    assert_eq!(
        hh.top(0, "d", 5),
        TopReport::default(),
        "a fourth policy is not tracked"
    );
    hh.retain(|name| name != "a");
    assert_eq!(hh.top(0, "a", 5), TopReport::default());
    hh.observe(0, &p("d"), &"é".repeat(400), 1);
    let report = hh.top(0, "d", 1);
    assert!(report.entries[0].key.len() <= MAX_KEY_BYTES);
    assert!(report.entries[0].key.chars().all(|c| c == 'é'));
}

proptest! {
    /// Whatever the stream, every reported range holds the true weight,
    /// is at most `N / m` wide, and every key heavier than `N / m` in the
    /// window is reported.
    #[test]
    fn reported_ranges_hold_the_truth(
        events in prop::collection::vec((0u64..40, 0u64..300, 1u64..4), 1..600),
        capacity in 1usize..12,
        slots in 1usize..5,
    ) {
        let slot_us = 100;
        let mut top = WindowedTop::new(TopConfig { capacity, slots, slot_us, max_policies: 1 });
        let mut events = events;
        events.sort_by_key(|e| e.1);
        for &(key, at, weight) in &events {
            top.observe(at, &format!("k{key}"), weight);
        }
        let now = events.last().unwrap().1;
        let first = (now / slot_us).saturating_sub(slots as u64 - 1) * slot_us;
        let mut truth: HashMap<String, u64> = HashMap::new();
        for &(key, _, weight) in events.iter().filter(|e| e.1 >= first) {
            *truth.entry(format!("k{key}")).or_default() += weight;
        }
        let report = top.top(now, usize::MAX);
        prop_assert_eq!(report.total, truth.values().sum::<u64>());
        for e in &report.entries {
            let t = truth.get(&e.key).copied().unwrap_or(0);
            prop_assert!(e.lower <= t && t <= e.upper, "{:?} truth {}", e, t);
            prop_assert!(e.upper - e.lower <= report.error_bound);
        }
        for (key, &t) in &truth {
            if t > report.error_bound {
                prop_assert!(report.entries.iter().any(|e| &e.key == key), "{} ({}) missing", key, t);
            }
        }
    }
}
