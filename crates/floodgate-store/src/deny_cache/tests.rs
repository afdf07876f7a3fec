use floodgate_core::testing::policy;
use floodgate_core::ManualClock;

use super::*;
use crate::testing::FakeStore;
use crate::{LocalConfig, LocalStore};

const S: u64 = 1_000_000;
const T0: u64 = 1_700_000_000 * S + 123_457;

fn setup() -> (DenyCache, Arc<FakeStore>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(T0));
    let inner = Arc::new(FakeStore::over(LocalStore::new(
        LocalConfig::default(),
        clock.clone(),
        Source::Local,
    )));
    let cache = DenyCache::new(inner.clone(), clock.clone(), 1_000);
    (cache, inner, clock)
}

async fn one(cache: &DenyCache, policy: &Policy, key: &str, hits: u64) -> Outcome {
    cache
        .check(&[StoreOp::new(policy, key, hits)])
        .await
        .unwrap()[0]
        .outcome
}

#[tokio::test]
async fn a_denied_key_is_answered_without_a_call_until_it_may_pass() {
    let (cache, inner, clock) = setup();
    let p = policy(AlgorithmKind::FixedWindow, 3, 10 * S)
        .name("fw")
        .build();
    for _ in 0..3 {
        assert!(one(&cache, &p, "fw:u", 1).await.allowed);
    }
    let denied = one(&cache, &p, "fw:u", 1).await;
    assert!(!denied.allowed);
    assert_eq!(inner.checks(), 4);
    for _ in 0..100 {
        clock.advance(1_000);
        let cached = cache.check(&[StoreOp::new(&p, "fw:u", 1)]).await.unwrap()[0];
        assert!(!cached.outcome.allowed);
        assert_eq!(cached.source, Source::Redis);
    }
    assert_eq!(inner.checks(), 4, "no call while cached");
    // The wait shrinks with time, to the same end the store said.
    let cached = one(&cache, &p, "fw:u", 1).await;
    assert_eq!(cached.retry_after_us, denied.retry_after_us - 100_000);
    assert_eq!(cached.limit, 3);
    assert_eq!(cached.remaining, 0);
    // At the end of the wait the store is asked again, and allows.
    clock.advance(cached.retry_after_us);
    assert!(one(&cache, &p, "fw:u", 1).await.allowed);
    assert_eq!(inner.checks(), 5);
    assert!(cache.is_empty(), "the lapsed denial was dropped");
}

#[tokio::test]
async fn a_smaller_cost_a_changed_policy_and_concurrency_ask_again() {
    let (cache, inner, _) = setup();
    let p = policy(AlgorithmKind::SlidingLog, 3, 10 * S)
        .name("log")
        .build();
    assert!(one(&cache, &p, "log:u", 2).await.allowed);
    assert!(!one(&cache, &p, "log:u", 2).await.allowed);
    assert!(!one(&cache, &p, "log:u", 5).await.allowed);
    assert_eq!(inner.checks(), 2, "hits 5 ≥ 2: cached");
    assert!(
        one(&cache, &p, "log:u", 1).await.allowed,
        "one hit still fits"
    );
    assert_eq!(inner.checks(), 3);

    // A reload that raises the limit is not held back by old denials.
    let tight = policy(AlgorithmKind::TokenBucket, 1, 10 * S)
        .name("tb")
        .build();
    assert!(one(&cache, &tight, "tb:u", 1).await.allowed);
    assert!(!one(&cache, &tight, "tb:u", 1).await.allowed);
    let raised = policy(AlgorithmKind::TokenBucket, 5, 10 * S)
        .name("tb")
        .build();
    let calls = inner.checks();
    one(&cache, &raised, "tb:u", 1).await;
    assert_eq!(inner.checks(), calls + 1);

    // A release can free a slot at any time: never cached.
    let cc = policy(AlgorithmKind::Concurrency, 1, 10 * S)
        .name("cc")
        .build();
    assert!(one(&cache, &cc, "cc:u", 1).await.allowed);
    let calls = inner.checks();
    assert!(!one(&cache, &cc, "cc:u", 1).await.allowed);
    assert!(!one(&cache, &cc, "cc:u", 1).await.allowed);
    assert_eq!(inner.checks(), calls + 2);
}

#[tokio::test]
async fn a_cached_enforced_denial_decides_the_other_ops_without_charging() {
    let (cache, inner, _) = setup();
    let hot = policy(AlgorithmKind::FixedWindow, 1, 10 * S)
        .name("hot")
        .build();
    let roomy = policy(AlgorithmKind::FixedWindow, 100, 10 * S)
        .name("roomy")
        .build();
    assert!(one(&cache, &hot, "hot:u", 1).await.allowed);
    assert!(!one(&cache, &hot, "hot:u", 1).await.allowed);
    inner.clear_asked();
    let ops = [
        StoreOp::new(&hot, "hot:u", 1),
        StoreOp::new(&roomy, "roomy:u", 1),
        StoreOp::new(&roomy, "roomy:big", 101),
    ];
    let out = cache.check(&ops).await.unwrap();
    assert!(!out[0].outcome.allowed && out[1].outcome.allowed);
    assert!(out[1].outcome.receipt.is_none());
    // The real cost is decided: 101 does not fit in 100.
    assert!(!out[2].outcome.allowed);
    assert_eq!(inner.asked(), [(1, false), (101, false)]);
    assert_eq!(one(&cache, &roomy, "roomy:u", 0).await.remaining, 100);

    // A shadow policy's cached denial blocks nothing.
    inner.clear_asked();
    let shadowed = [
        StoreOp {
            enforced: false,
            ..StoreOp::new(&hot, "hot:u", 1)
        },
        StoreOp::new(&roomy, "roomy:u", 1),
    ];
    let out = cache.check(&shadowed).await.unwrap();
    assert!(!out[0].outcome.allowed && out[1].outcome.receipt.is_some());
    assert_eq!(inner.asked(), [(1, true)]);
}

#[tokio::test]
async fn a_denial_caused_by_the_same_checks_own_charge_is_not_learned() {
    let (cache, inner, _) = setup();
    let p = policy(AlgorithmKind::FixedWindow, 1, 10 * S)
        .name("fw")
        .build();
    // One counter twice in one check: the first charges, the second is
    // denied by that charge, and the limiter will refund the first.
    let twice = [StoreOp::new(&p, "fw:u", 1), StoreOp::new(&p, "fw:u", 1)];
    let out = cache.check(&twice).await.unwrap();
    assert!(out[0].outcome.receipt.is_some() && !out[1].outcome.allowed);
    assert!(cache.is_empty());
    inner.local().unwrap().refund_one(&Refund {
        policy: &p,
        key: "fw:u",
        hits: 1,
        receipt: out[0].outcome.receipt.unwrap(),
        source: None,
    });
    assert!(
        one(&cache, &p, "fw:u", 1).await.allowed,
        "the quota came back"
    );
}

#[tokio::test]
async fn cached_denials_neither_hide_an_outage_nor_cache_fallback_answers() {
    use crate::{FailoverConfig, FailoverStore};
    use floodgate_core::FallbackMode;
    let (_, inner, clock) = setup();
    let failover = Arc::new(FailoverStore::new(
        Some(inner.clone()),
        Arc::new(LocalStore::new(
            LocalConfig::default(),
            clock.clone(),
            Source::Fallback,
        )),
        FailoverConfig {
            mode: FallbackMode::Deny,
            instances: 1,
            probe_interval: std::time::Duration::from_secs(1),
            failure_threshold: 3,
            trip: crate::RateTrip::default(),
        },
    ));
    let cache = DenyCache::new(failover.clone(), clock.clone(), 1_000);
    let hot = policy(AlgorithmKind::FixedWindow, 1, 10 * S)
        .name("hot")
        .build();
    let other = policy(AlgorithmKind::FixedWindow, 100, 10 * S)
        .name("other")
        .build();
    assert!(one(&cache, &hot, "hot:u", 1).await.allowed);
    assert!(!one(&cache, &hot, "hot:u", 1).await.allowed);
    inner.down();
    // Cached denials between failing checks: the failures still add up.
    for i in 0..3 {
        assert!(!one(&cache, &hot, "hot:u", 1).await.allowed);
        let answer = cache
            .check(&[StoreOp::new(&other, &format!("other:{i}"), 1)])
            .await
            .unwrap()[0];
        assert_eq!(answer.source, Source::Fallback);
    }
    assert!(
        failover.is_open(),
        "three failures in a row trip the breaker"
    );
    // The fallback's denials (mode deny) are not Redis's: not cached.
    let before = cache.len();
    assert!(!one(&cache, &other, "other:new", 1).await.allowed);
    assert_eq!(cache.len(), before);
}

/// The cache must never change a decision: the same random sequence of
/// checks and clock moves against a cached and a bare store, both over one
/// clock, gives the same `allowed` every time (nothing gives quota back
/// early here, as on a standalone Redis), and a wait no longer than the
/// store's (the same for one hit).
#[tokio::test]
async fn decisions_are_those_of_the_store_alone() {
    for kind in [
        AlgorithmKind::SlidingWindow,
        AlgorithmKind::FixedWindow,
        AlgorithmKind::SlidingLog,
        AlgorithmKind::TokenBucket,
    ] {
        let (cache, inner, clock) = setup();
        let bare = LocalStore::new(LocalConfig::default(), clock.clone(), Source::Local);
        let p = policy(kind, 7, 10 * S).build();
        let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ kind as u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let (mut denied, mut cached) = (0, 0);
        for step in 0..3_000 {
            let hits = [0, 1, 1, 1, 2, 3][(next() % 6) as usize];
            let calls = inner.checks();
            let a = one(&cache, &p, "p:u", hits).await;
            let b = bare.check_one(&p, "p:u", hits);
            assert_eq!(a.allowed, b.allowed, "{kind:?} step {step} hits {hits}");
            if !a.allowed {
                denied += 1;
                // The wait of the cost denied: never longer than the store's.
                assert!(a.retry_after_us <= b.retry_after_us, "{kind:?} step {step}");
                if hits <= 1 {
                    assert_eq!(a.retry_after_us, b.retry_after_us, "{kind:?} step {step}");
                }
                if inner.checks() == calls {
                    cached += 1;
                }
            }
            clock.advance([1, 999, 10_000, 250_000, 1_000_000][(next() % 5) as usize]);
        }
        assert!(
            denied > 300 && cached > 100,
            "{kind:?}: {denied} denied, {cached} cached"
        );
    }
}

#[tokio::test]
async fn a_flood_of_denied_keys_stays_under_the_cap() {
    let (cache, _, _) = setup();
    let p = policy(AlgorithmKind::FixedWindow, 1, 10 * S)
        .name("fw")
        .build();
    for i in 0..5_000 {
        let key = format!("fw:{i}");
        one(&cache, &p, &key, 1).await;
        one(&cache, &p, &key, 1).await;
    }
    assert!(cache.len() <= 1_024, "{} denials", cache.len());
}

/// A settle that gives tokens back makes a cached denial of that counter
/// stale: the next check asks the store again and passes.
#[tokio::test]
async fn a_refund_by_settle_forgets_the_cached_denial() {
    let (cache, inner, _) = setup();
    let p = policy(AlgorithmKind::FixedWindow, 10, 10 * S)
        .name("tokens")
        .settle(true)
        .build();
    let op = StoreOp {
        reserve: Some(5),
        ..StoreOp::new(&p, "tokens:u", 10)
    };
    let at = cache.check(&[op]).await.unwrap()[0]
        .outcome
        .receipt
        .unwrap()
        .at_us;
    assert!(!one(&cache, &p, "tokens:u", 1).await.allowed);
    assert!(!one(&cache, &p, "tokens:u", 1).await.allowed);
    let calls = inner.checks();
    let s = Settle {
        policy: &p,
        key: "tokens:u",
        nonce: 5,
        issued_us: at,
        actual: 2,
    };
    assert_eq!(
        cache.settle(&[s]).await.unwrap(),
        vec![Settled::Applied { estimate: 10 }]
    );
    assert!(one(&cache, &p, "tokens:u", 1).await.allowed);
    assert_eq!(inner.checks(), calls + 1, "asked the store again");
}

#[tokio::test]
async fn a_lockout_is_answered_from_the_cache_for_any_cost_until_it_ends() {
    let (cache, inner, clock) = setup();
    let p = policy(AlgorithmKind::FixedWindow, 1, S)
        .name("login")
        .with(|spec| spec.block_for_us = Some(60 * S))
        .build();
    assert!(one(&cache, &p, "login:u", 1).await.allowed);
    // A peek starts no block and is not learned.
    assert!(!one(&cache, &p, "login:u", 0).await.allowed);
    assert!(cache.is_empty());
    let denied = one(&cache, &p, "login:u", 1).await;
    assert_eq!(denied.retry_after_us, 60 * S);
    let calls = inner.checks();
    // Long past the policy's window, and with a smaller cost: still cached.
    clock.advance(30 * S);
    for hits in [0, 1, 5] {
        let cached = one(&cache, &p, "login:u", hits).await;
        assert!(!cached.allowed);
        assert_eq!(cached.retry_after_us, 30 * S);
    }
    assert_eq!(inner.checks(), calls, "no call while blocked");
    // Forgetting it (an admin reset) asks the store again.
    cache.forget(&["login:u"]);
    assert!(cache.is_empty());
    assert!(!one(&cache, &p, "login:u", 1).await.allowed);
    assert_eq!(inner.checks(), calls + 1);
    clock.advance(30 * S);
    assert!(
        one(&cache, &p, "login:u", 1).await.allowed,
        "the block has ended"
    );
}

#[tokio::test]
async fn a_reset_or_an_announcement_forgets_the_cached_denial() {
    let (cache, inner, _) = setup();
    let p = policy(AlgorithmKind::FixedWindow, 1, 10 * S)
        .name("fw")
        .build();
    assert!(one(&cache, &p, "fw:u", 1).await.allowed);
    assert!(!one(&cache, &p, "fw:u", 1).await.allowed);
    assert!(!one(&cache, &p, "fw:u", 1).await.allowed);
    assert_eq!(inner.checks(), 2, "answered from the cache");
    // An announcement from another sidecar: forgotten, the store is asked.
    cache.forget(&["fw:u"]);
    assert!(cache.is_empty());
    assert!(!one(&cache, &p, "fw:u", 1).await.allowed);
    assert_eq!(inner.checks(), 3);
    // A reset here: the store's counter is cleared too.
    let clear = crate::Clear {
        policy: &p,
        key: "fw:u",
    };
    cache.clear(&[clear]).await.unwrap();
    assert!(one(&cache, &p, "fw:u", 1).await.allowed);
}
