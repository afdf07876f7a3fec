use std::sync::Arc;

use floodgate_core::testing::policy;
use floodgate_core::{AlgorithmKind, ManualClock, Policy};

use crate::store::{Settle, Settled, Source, Store, StoreOp};
use crate::{LocalConfig, LocalStore};

const S: u64 = 1_000_000;
const T0: u64 = 1_700_000_000 * S;

fn store() -> (LocalStore, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(T0));
    let store = LocalStore::new(
        LocalConfig {
            max_keys: 1000,
            shards: 4,
        },
        clock.clone(),
        Source::Local,
    );
    (store, clock)
}

async fn reserve(store: &LocalStore, p: &Policy, hits: u64, nonce: u128) -> bool {
    let op = StoreOp {
        reserve: Some(nonce),
        ..StoreOp::new(p, "p:a", hits)
    };
    store.check(&[op]).await.unwrap()[0].outcome.allowed
}

async fn settle(store: &LocalStore, p: &Policy, nonce: u128, actual: u64) -> Settled {
    let s = Settle {
        policy: p,
        key: "p:a",
        nonce,
        issued_us: T0,
        actual,
    };
    store.settle(&[s]).await.unwrap()[0]
}

fn remaining(store: &LocalStore, p: &Policy) -> u64 {
    store.decide_one(p, "p:a", 0).remaining
}

#[tokio::test]
async fn overrun_refund_and_single_use_on_every_algorithm() {
    for kind in [
        AlgorithmKind::SlidingWindow,
        AlgorithmKind::FixedWindow,
        AlgorithmKind::TokenBucket,
    ] {
        let (store, _) = store();
        let p = policy(kind, 1_000, 60 * S).settle(true).build();
        assert!(reserve(&store, &p, 500, 1).await);
        assert!(reserve(&store, &p, 500, 2).await);
        assert_eq!(remaining(&store, &p), 0, "{kind:?}");
        // One call used 200 tokens: 300 come back.
        assert_eq!(
            settle(&store, &p, 1, 200).await,
            Settled::Applied { estimate: 500 }
        );
        assert_eq!(remaining(&store, &p), 300, "{kind:?}");
        // Settled twice: nothing more comes back.
        assert_eq!(settle(&store, &p, 1, 0).await, Settled::Spent);
        assert_eq!(remaining(&store, &p), 300, "{kind:?}");
        // The other used 1 500: 1 000 more, past the limit, and the
        // checks that follow are denied.
        assert_eq!(
            settle(&store, &p, 2, 1_500).await,
            Settled::Applied { estimate: 500 }
        );
        assert_eq!(remaining(&store, &p), 0, "{kind:?}");
        assert!(!reserve(&store, &p, 1, 3).await, "{kind:?}");
    }
}

#[tokio::test]
async fn forged_nonces_and_other_counters_change_nothing() {
    let (store, _) = store();
    let p = policy(AlgorithmKind::FixedWindow, 100, 60 * S)
        .settle(true)
        .build();
    assert!(reserve(&store, &p, 80, 7).await);
    assert_eq!(settle(&store, &p, 8, 0).await, Settled::Unknown);
    let other = Settle {
        policy: &p,
        key: "p:b",
        nonce: 7,
        issued_us: T0,
        actual: 0,
    };
    assert_eq!(
        store.settle(&[other]).await.unwrap(),
        vec![Settled::Unknown]
    );
    assert_eq!(remaining(&store, &p), 20);
    // The real one still settles.
    assert_eq!(
        settle(&store, &p, 7, 10).await,
        Settled::Applied { estimate: 80 }
    );
    assert_eq!(remaining(&store, &p), 90);
}

#[tokio::test]
async fn an_unsettled_reservation_keeps_its_estimate_and_lapses() {
    let (store, clock) = store();
    let p = policy(AlgorithmKind::SlidingWindow, 100, 60 * S)
        .settle(true)
        .build();
    assert!(reserve(&store, &p, 100, 1).await);
    assert_eq!(store.reservations(), 1);
    clock.advance(119 * S);
    // Still settleable just before two windows have passed.
    assert!(reserve(&store, &p, 1, 2).await);
    assert_eq!(
        settle(&store, &p, 2, 1).await,
        Settled::Applied { estimate: 1 }
    );
    clock.advance(S);
    assert_eq!(settle(&store, &p, 1, 0).await, Settled::Lapsed);
    store.sweep();
    assert_eq!(store.reservations(), 1, "the settled marker of the second");
    clock.advance(120 * S);
    store.sweep();
    assert_eq!(store.reservations(), 0);
}

#[tokio::test]
async fn a_denied_or_plain_check_keeps_no_record() {
    let (store, _) = store();
    let p = policy(AlgorithmKind::FixedWindow, 10, 60 * S)
        .settle(true)
        .build();
    assert!(!reserve(&store, &p, 11, 1).await);
    assert!(store.check(&[StoreOp::new(&p, "p:a", 1)]).await.is_ok());
    assert_eq!(store.reservations(), 0);
    // Nor does a reserve on a policy without `settle`.
    let plain = policy(AlgorithmKind::SlidingWindow, 10, 60 * S)
        .name("q")
        .build();
    assert!(reserve(&store, &plain, 1, 2).await);
    assert_eq!(store.reservations(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_settles_of_one_reservation_apply_once() {
    let (store, _) = store();
    let store = Arc::new(store);
    let p = Arc::new(
        policy(AlgorithmKind::FixedWindow, 1_000, 60 * S)
            .settle(true)
            .build(),
    );
    assert!(reserve(&store, &p, 500, 9).await);
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (store, p) = (store.clone(), p.clone());
            tokio::spawn(async move { settle(&store, &p, 9, 0).await })
        })
        .collect();
    let mut applied = 0;
    for task in tasks {
        match task.await.unwrap() {
            Settled::Applied { .. } => applied += 1,
            other => assert_eq!(other, Settled::Spent),
        }
    }
    assert_eq!(applied, 1);
    assert_eq!(remaining(&store, &p), 1_000, "refunded once, not 32 times");
}

#[tokio::test]
async fn a_settle_after_a_reset_gives_nothing_back_to_the_fresh_counter() {
    for kind in [
        AlgorithmKind::SlidingWindow,
        AlgorithmKind::FixedWindow,
        AlgorithmKind::TokenBucket,
    ] {
        let (store, clock) = store();
        let p = policy(kind, 1_000, 60 * S).settle(true).build();
        assert!(reserve(&store, &p, 500, 1).await);
        clock.advance(S);
        store
            .clear(&[crate::Clear {
                policy: &p,
                key: "p:a",
            }])
            .await
            .unwrap();
        assert_eq!(remaining(&store, &p), 1_000, "{kind:?}");
        assert!(reserve(&store, &p, 400, 2).await);
        // The reservation charged before the reset used nothing: its 500
        // were wiped with the counter, none comes back on top.
        assert_eq!(
            settle(&store, &p, 1, 0).await,
            Settled::Applied { estimate: 500 }
        );
        assert!(remaining(&store, &p) <= 600, "{kind:?}");
        // One charged after the reset is refunded as usual.
        settle(&store, &p, 2, 100).await;
        assert!(remaining(&store, &p) >= 850, "{kind:?}");
    }
}
