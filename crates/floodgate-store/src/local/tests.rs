use super::*;
use floodgate_core::testing::policy;
use floodgate_core::ManualClock;

const S: u64 = 1_000_000;
const T0: u64 = 1_700_000_000 * S;

fn store(max_keys: usize, shards: usize) -> (LocalStore, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(T0));
    let store = LocalStore::new(
        LocalConfig { max_keys, shards },
        clock.clone(),
        Source::Local,
    );
    (store, clock)
}

#[test]
fn counts_each_key_apart() {
    let (store, _) = store(1000, 4);
    let p = policy(AlgorithmKind::FixedWindow, 2, 60 * S).build();
    assert!(store.check_one(&p, "p:a", 1).allowed);
    assert!(store.check_one(&p, "p:a", 1).allowed);
    assert!(!store.check_one(&p, "p:a", 1).allowed);
    assert!(store.check_one(&p, "p:b", 1).allowed);
    assert_eq!(store.len(), 2);
}

#[test]
fn peeks_and_denials_of_new_keys_store_nothing() {
    let (store, _) = store(1000, 4);
    let p = policy(AlgorithmKind::SlidingWindow, 2, 60 * S).build();
    assert!(store.check_one(&p, "p:a", 0).allowed);
    assert!(!store.check_one(&p, "p:a", 3).allowed);
    assert!(store.is_empty());
}

#[test]
fn a_flood_of_distinct_keys_stays_under_the_cap() {
    let (store, _) = store(256, 8);
    let p = policy(AlgorithmKind::SlidingWindow, 5, 60 * S).build();
    for i in 0..20_000 {
        assert!(store.check_one(&p, &format!("p:user{i}"), 1).allowed);
    }
    assert!(store.len() <= 256, "{} keys", store.len());
    assert!(store.evictions() >= 20_000 - 256);
}

#[test]
fn sweep_drops_expired_counters_only() {
    let (store, clock) = store(1000, 4);
    let short = policy(AlgorithmKind::FixedWindow, 5, S)
        .name("short")
        .build();
    let long = policy(AlgorithmKind::FixedWindow, 5, 60 * S).build();
    store.check_one(&short, "short:a", 1);
    store.check_one(&long, "p:a", 1);
    clock.advance(2 * S);
    assert_eq!(store.sweep(), 1);
    // The long counter kept its count.
    assert_eq!(store.check_one(&long, "p:a", 0).remaining, 4);
}

#[test]
fn refund_and_release_undo_exactly() {
    let (store, _) = store(1000, 4);
    let c = policy(AlgorithmKind::Concurrency, 1, 60 * S).build();
    let first = store.check_one(&c, "p:a", 1);
    assert!(first.allowed);
    assert!(!store.check_one(&c, "p:a", 1).allowed);
    store.refund_one(&Refund {
        policy: &c,
        key: "p:a",
        hits: 1,
        receipt: first.receipt.unwrap(),
        source: Some(Source::Local),
    });
    assert!(store.check_one(&c, "p:a", 1).allowed);
}

#[test]
fn concurrent_checks_admit_exactly_the_limit() {
    let (store, _) = store(1000, 4);
    let store = Arc::new(store);
    let p = Arc::new(policy(AlgorithmKind::SlidingLog, 500, 60 * S).build());
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (store, p) = (store.clone(), p.clone());
            std::thread::spawn(move || {
                (0..200)
                    .filter(|_| store.check_one(&p, "p:hot", 1).allowed)
                    .count()
            })
        })
        .collect();
    let admitted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(admitted, 500);
}

/// A fixed window of `window_us`, limit 3.
fn fixed(window_us: u64) -> Policy {
    policy(AlgorithmKind::FixedWindow, 3, window_us).build()
}

#[test]
fn a_reload_that_grows_the_window_neither_locks_nor_immortalises_a_counter() {
    let (store, clock) = store(1000, 4);
    let before = fixed(S);
    for _ in 0..3 {
        assert!(store.check_one(&before, "p:a", 1).allowed);
    }
    assert!(!store.check_one(&before, "p:a", 1).allowed);
    let after = fixed(10 * S);
    let o = store.check_one(&after, "p:a", 1);
    assert!(o.allowed, "the 1 s counter locks the 10 s window");
    assert!(o.reset_after_us <= 10 * S);
    clock.advance(20 * S);
    assert_eq!(store.sweep(), 0, "the counter outlives its window");
}

#[test]
fn a_refund_under_reloaded_parameters_never_lengthens_a_counters_life() {
    let (store, clock) = store(1000, 4);
    let before = fixed(S);
    let receipt = store.check_one(&before, "p:a", 1).receipt.unwrap();
    // The refund arrives after a reload lengthened the window.
    store.refund_one(&Refund {
        policy: &fixed(10 * S),
        key: "p:a",
        hits: 1,
        receipt,
        source: Some(Source::Local),
    });
    clock.advance(2 * S);
    assert_eq!(store.sweep(), 0, "the refund gave the counter a new expiry");
}

/// `max_keys` bounds size too: `sliding_log` counters count their entries
/// (16 to a key), and a sweep evicts down to the budget.
#[test]
fn sliding_log_entries_count_towards_max_keys() {
    let (store, _clock) = store(1_000, 1);
    let log = policy(AlgorithmKind::SlidingLog, 1_000, 60 * S).build();
    for key in 0..20 {
        for _ in 0..1_000 {
            assert!(store.check_one(&log, &format!("p:{key}"), 1).allowed);
        }
    }
    // 20 counters of 1 + 1000 / 16 = 63 units: 1 260 > 1 000.
    assert_eq!(store.len(), 20);
    let remaining = store.sweep();
    assert_eq!(remaining, 15, "15 × 63 = 945 units fit, 16 × 63 do not");
}

fn blocking(limit: u64, block_for: u64, escalation: bool) -> Policy {
    policy(AlgorithmKind::FixedWindow, limit, 10 * S)
        .name("login")
        .with(|spec| {
            spec.block_for_us = Some(block_for);
            spec.block_escalation = escalation;
            spec.block_max_us = escalation.then_some(8 * block_for);
        })
        .build()
}

#[test]
fn a_denial_blocks_the_key_past_its_window_until_the_block_ends() {
    let (store, clock) = store(1000, 4);
    let p = blocking(2, 60 * S, false);
    clock.set(T0 - T0 % (10 * S));
    assert!(store.check_one(&p, "login:u1", 1).allowed);
    assert!(store.check_one(&p, "login:u1", 1).allowed);
    let denied = store.check_one(&p, "login:u1", 1);
    assert!(!denied.allowed);
    assert_eq!(
        (denied.retry_after_us, denied.reset_after_us),
        (60 * S, 60 * S)
    );
    // The window has rolled over, the counter would allow: still blocked.
    clock.advance(30 * S);
    let held = store.check_one(&p, "login:u1", 1);
    assert!(!held.allowed);
    assert_eq!((held.remaining, held.retry_after_us), (0, 30 * S));
    assert!(
        !store.decide_one(&p, "login:u1", 0).allowed,
        "peeks are refused too"
    );
    // Another key of the policy is not blocked.
    assert!(store.check_one(&p, "login:u2", 1).allowed);
    clock.advance(30 * S);
    assert!(
        store.check_one(&p, "login:u1", 1).allowed,
        "the block has ended"
    );
}

#[test]
fn peeks_never_start_a_block_and_a_cleared_block_lifts_at_once() {
    let (store, clock) = store(1000, 4);
    let p = blocking(1, 60 * S, false);
    assert!(store.check_one(&p, "login:u1", 1).allowed);
    assert!(!store.check_one(&p, "login:u1", 1).allowed);
    assert!(store.clear_block("login:u1"));
    assert!(!store.clear_block("login:u1"));
    clock.advance(10 * S);
    assert!(store.check_one(&p, "login:u1", 1).allowed, "block cleared");
    let peek = store.decide_one(&p, "login:u1", 0);
    assert!(!peek.allowed);
    assert!(peek.retry_after_us <= 10 * S, "a peek starts no block");
}

#[test]
fn repeat_offences_double_the_block_up_to_its_cap() {
    let (store, clock) = store(1000, 4);
    let p = blocking(1, 10 * S, true);
    let mut lengths = Vec::new();
    for _ in 0..5 {
        clock.advance(10 * S); // a fresh window (window = 10 s)
        let _ = store.check_one(&p, "login:u1", 1);
        let denied = store.check_one(&p, "login:u1", 1);
        assert!(!denied.allowed);
        lengths.push(denied.retry_after_us / S);
        clock.advance(denied.retry_after_us);
    }
    assert_eq!(lengths, [10, 20, 40, 80, 80]);
}

#[test]
fn an_admin_reset_and_a_reset_announcement_lift_a_lockout() {
    let (store, _clock) = store(1000, 4);
    let p = blocking(1, 60 * S, false);
    for forget in [false, true] {
        assert!(store.check_one(&p, "login:u1", 1).allowed);
        assert!(!store.check_one(&p, "login:u1", 1).allowed, "blocked");
        if forget {
            // Another sidecar's reset, announced: the fallback forgets.
            crate::Store::forget(&store, &["login:u1"]);
        } else {
            store.clear_one(&crate::Clear {
                policy: &p,
                key: "login:u1",
            });
        }
        assert!(
            store.check_one(&p, "login:u1", 1).allowed,
            "reset lifted the lockout (forget: {forget})"
        );
        store.clear_one(&crate::Clear {
            policy: &p,
            key: "login:u1",
        });
    }
}
