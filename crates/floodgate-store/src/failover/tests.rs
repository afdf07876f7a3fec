use std::time::Duration;

use floodgate_core::{AlgorithmKind, FallbackMode, ManualClock, Policy, PolicySpec};

use super::*;
use crate::testing::FakeStore;
use crate::LocalConfig;

const S: u64 = 1_000_000;
const T0: u64 = 1_700_000_000 * S;

fn policy(limit: u64, fallback: Option<FallbackMode>) -> Policy {
    Policy::new(PolicySpec {
        name: "p".into(),
        key: vec!["user".into()],
        limit,
        window_us: Some(60 * S),
        algorithm: AlgorithmKind::FixedWindow,
        fallback,
        ..PolicySpec::default()
    })
    .unwrap()
}

fn failover(primary: Option<Arc<FakeStore>>, instances: u64) -> FailoverStore {
    let local = LocalStore::new(
        LocalConfig::default(),
        Arc::new(ManualClock::new(T0)),
        Source::Fallback,
    );
    FailoverStore::new(
        primary.map(|p| p as Arc<dyn Store>),
        Arc::new(local),
        FailoverConfig {
            mode: FallbackMode::Local,
            instances,
            probe_interval: Duration::from_millis(200),
            failure_threshold: 3,
            // Only every call failing trips by rate: the consecutive count
            // is what most tests here exercise.
            trip: RateTrip {
                rate: 1.0,
                ..RateTrip::default()
            },
        },
    )
}

async fn check(store: &FailoverStore, policy: &Policy, key: &str) -> StoreOutcome {
    let ops = [StoreOp::new(policy, key, 1)];
    let mut outcomes = store.check(&ops).await.expect("never an error");
    assert_eq!(outcomes.len(), 1);
    outcomes.pop().unwrap()
}

#[tokio::test]
async fn opens_after_threshold_and_stops_calling_the_primary() {
    let fake = Arc::new(FakeStore::allowing());
    let store = failover(Some(fake.clone()), 1);
    let p = policy(10, None);
    assert_eq!(check(&store, &p, "p:a").await.source, Source::Redis);
    assert_eq!(store.mode(), Source::Redis);

    fake.fail_with(Some(StoreError::Timeout));
    for i in 0..3 {
        // Failed calls are answered by the fallback, never an error.
        assert_eq!(check(&store, &p, "p:a").await.source, Source::Fallback);
        assert_eq!(store.is_open(), i == 2, "after {} failures", i + 1);
    }
    assert_eq!(store.mode(), Source::Fallback);
    let calls = fake.checks();
    for _ in 0..5 {
        assert_eq!(check(&store, &p, "p:b").await.source, Source::Fallback);
    }
    assert_eq!(fake.checks(), calls, "primary called while open");
}

/// Two calls of three failing (one Cluster node of three gone): never
/// `failure_threshold` in a row, but a sustained error rate opens the
/// breaker.
#[tokio::test]
async fn a_sustained_error_rate_opens_the_breaker_despite_successes() {
    let fake = Arc::new(FakeStore::allowing());
    let local = LocalStore::new(
        LocalConfig::default(),
        Arc::new(ManualClock::new(T0)),
        Source::Fallback,
    );
    let store = FailoverStore::new(
        Some(fake.clone() as Arc<dyn Store>),
        Arc::new(local),
        FailoverConfig {
            mode: FallbackMode::Local,
            instances: 1,
            probe_interval: Duration::from_millis(200),
            failure_threshold: 3,
            trip: RateTrip::default(),
        },
    );
    let p = policy(10, None);
    for _ in 0..10 {
        fake.fail_with(None);
        check(&store, &p, "p:a").await;
        fake.fail_with(Some(StoreError::Timeout));
        check(&store, &p, "p:a").await;
        check(&store, &p, "p:a").await;
    }
    assert!(store.is_open());
}

#[tokio::test]
async fn a_success_resets_the_failure_count() {
    let fake = Arc::new(FakeStore::allowing());
    let store = failover(Some(fake.clone()), 1);
    let p = policy(10, None);
    for _ in 0..5 {
        fake.fail_with(Some(StoreError::Unavailable("down".into())));
        check(&store, &p, "p:a").await;
        check(&store, &p, "p:a").await;
        fake.fail_with(None);
        check(&store, &p, "p:a").await;
    }
    assert!(!store.is_open());
}

#[tokio::test]
async fn protocol_errors_are_answered_but_do_not_trip() {
    let fake = Arc::new(FakeStore::allowing());
    let store = failover(Some(fake.clone()), 1);
    let p = policy(10, None);
    fake.fail_with(Some(StoreError::Protocol("odd".into())));
    for _ in 0..10 {
        assert_eq!(check(&store, &p, "p:a").await.source, Source::Fallback);
    }
    assert!(!store.is_open());
}

#[tokio::test]
async fn probe_closes_the_breaker_only_when_the_primary_answers() {
    let fake = Arc::new(FakeStore::allowing());
    let store = failover(Some(fake.clone()), 1);
    let p = policy(10, None);
    fake.fail_with(Some(StoreError::Timeout));
    for _ in 0..3 {
        check(&store, &p, "p:a").await;
    }
    assert!(store.is_open());
    assert!(!store.probe_once().await);
    assert!(store.is_open());
    fake.fail_with(None);
    assert!(store.probe_once().await);
    assert!(!store.is_open());
    assert_eq!(fake.pings(), 2);
    assert_eq!(check(&store, &p, "p:a").await.source, Source::Redis);
    // Closed: probing does not ping.
    assert!(store.probe_once().await);
    assert_eq!(fake.pings(), 2);
}

#[tokio::test]
async fn local_mode_admits_the_scaled_limit() {
    for (limit, instances, expected) in [(10, 2, 5), (10, 3, 4), (10, 1, 10), (1, 4, 1)] {
        let store = failover(None, instances);
        let p = policy(limit, Some(FallbackMode::Local));
        let mut allowed = 0;
        for _ in 0..limit + 5 {
            let o = check(&store, &p, "p:a").await;
            assert_eq!(o.source, Source::Fallback);
            assert_eq!(o.outcome.limit, expected);
            allowed += u64::from(o.outcome.allowed);
        }
        assert_eq!(allowed, expected, "ceil({limit} / {instances})");
    }
}

#[tokio::test]
async fn allow_and_deny_modes_do_what_they_say() {
    let store = failover(None, 2);
    let allow = policy(3, Some(FallbackMode::Allow));
    let deny = policy(3, Some(FallbackMode::Deny));
    for _ in 0..10 {
        let o = check(&store, &allow, "p:a").await;
        assert!(o.outcome.allowed);
        assert_eq!(o.source, Source::Fallback);
        let o = check(&store, &deny, "p:b").await;
        assert!(!o.outcome.allowed);
        assert_eq!(o.outcome.remaining, 0);
        assert_eq!(o.outcome.limit, 3);
        assert_eq!(o.outcome.retry_after_us, 200_000);
        assert_eq!(o.source, Source::Fallback);
    }
    // Policies without their own mode use the configured default (local).
    let default = policy(4, None);
    let allowed = {
        let mut n = 0;
        for _ in 0..6 {
            n += usize::from(check(&store, &default, "p:c").await.outcome.allowed);
        }
        n
    };
    assert_eq!(allowed, 2);
}

#[tokio::test]
async fn starts_open_without_a_primary_and_closes_when_installed() {
    let store = failover(None, 1);
    let p = policy(10, None);
    assert!(store.is_open());
    assert_eq!(store.mode(), Source::Fallback);
    assert!(!store.probe_once().await);
    assert_eq!(check(&store, &p, "p:a").await.source, Source::Fallback);
    let fake = Arc::new(FakeStore::allowing());
    assert!(store.install_primary(fake.clone()));
    assert!(!store.install_primary(fake.clone()));
    assert_eq!(store.mode(), Source::Redis);
    assert_eq!(check(&store, &p, "p:a").await.source, Source::Redis);
}

#[tokio::test]
async fn refunds_follow_the_breaker_and_never_fail() {
    let fake = Arc::new(FakeStore::allowing());
    let store = failover(Some(fake.clone()), 1);
    let p = policy(10, None);
    let receipt = floodgate_core::Receipt { at_us: T0, id: 0 };
    let refund = [Refund {
        policy: &p,
        key: "p:a",
        hits: 1,
        receipt,
        source: Some(Source::Redis),
    }];
    store.refund(&refund).await.unwrap();
    assert_eq!(fake.refunds(), 1);
    fake.fail_with(Some(StoreError::Timeout));
    for _ in 0..3 {
        store
            .refund(&refund)
            .await
            .expect("refund errors are logged");
    }
    assert!(store.is_open());
    let before = fake.refunds();
    // Open: a fallback charge is refunded locally, the primary untouched.
    let o = check(&store, &p, "p:z").await;
    assert_eq!(o.outcome.remaining, 9);
    store
        .refund(&[Refund {
            policy: &p,
            key: "p:z",
            hits: 1,
            receipt: o.outcome.receipt.unwrap(),
            source: Some(o.source),
        }])
        .await
        .unwrap();
    assert_eq!(check(&store, &p, "p:z").await.outcome.remaining, 9);
    assert_eq!(fake.refunds(), before);
}

#[tokio::test]
async fn a_live_count_divides_and_an_outage_keeps_the_last_one() {
    let fake = Arc::new(FakeStore::allowing());
    let store = failover(Some(fake.clone()), 1);
    let p = policy(10, Some(FallbackMode::Local));
    assert_eq!(store.instances(), 1);
    assert!(store.set_instances(3));
    assert_eq!(store.instances(), 3);
    assert!(store.set_instances(0), "0 counts as 1");
    assert_eq!(store.instances(), 1);
    assert!(store.set_instances(4));

    fake.fail_with(Some(StoreError::Timeout));
    for _ in 0..3 {
        check(&store, &p, "p:x").await;
    }
    assert!(store.is_open());
    // Counts arriving during the outage do not replace the last one seen.
    assert!(!store.set_instances(1));
    assert_eq!(store.instances(), 4);
    let mut allowed = 0;
    for _ in 0..10 {
        let o = check(&store, &p, "p:y").await;
        assert_eq!(o.outcome.limit, 3, "ceil(10 / 4)");
        allowed += u64::from(o.outcome.allowed);
    }
    assert_eq!(allowed, 3);
}

/// Two policies over a failover store whose primary fails: the fallback
/// counts both, one denies, and the other's charge is refunded — into the
/// fallback that counted it, never into the primary.
#[tokio::test]
async fn a_fallback_charge_is_refunded_into_the_fallback_only() {
    use crate::{Check, Limiter};
    use floodgate_core::{Attributes, PolicySet};
    let fake = Arc::new(FakeStore::allowing());
    let store = Arc::new(failover(Some(fake.clone()), 1));
    let spec = |name: &str, limit| PolicySpec {
        name: name.into(),
        key: vec!["user".into()],
        limit,
        window_us: Some(60 * S),
        algorithm: AlgorithmKind::FixedWindow,
        ..PolicySpec::default()
    };
    let policies = vec![
        Policy::new(spec("wide", 10)).unwrap(),
        Policy::new(spec("narrow", 1)).unwrap(),
    ];
    let limiter = Limiter::new(PolicySet::new(policies).unwrap(), store.clone());
    let attributes: Attributes = [("user".to_string(), "u1".to_string())].into();
    let check = || {
        limiter.check(Check {
            attributes: &attributes,
            hits: 1,
            domain: None,
            reserve: false,
        })
    };
    // One failed primary call (the breaker stays closed): the fallback
    // admits it, charging both policies.
    fake.fail_with(Some(StoreError::Unavailable("one bad call".into())));
    let first = check().await.unwrap();
    assert!(first.allowed);
    assert!(first.statuses.iter().all(|s| s.source == Source::Fallback));
    // Another failed call: `narrow` denies in the fallback, so `wide`'s
    // fallback charge is refunded.
    let second = check().await.unwrap();
    assert!(!second.allowed);
    assert!(!store.is_open(), "two failures, threshold 3");
    assert_eq!(
        fake.refunds(),
        0,
        "a fallback charge must never be refunded into the primary"
    );
    // The fallback got it back: `wide` has counted one hit, not two.
    let third = check().await.unwrap();
    let wide = &third.statuses[0];
    assert_eq!(
        (wide.policy.as_ref(), wide.source),
        ("wide", Source::Fallback)
    );
    assert_eq!(wide.remaining, 8, "10 - the first check - this one");
}

/// A primary call that timed out may still run in the primary: the fallback
/// answers that check without charging, so it is never counted twice; a call
/// that surely did not run is charged in the fallback.
#[tokio::test]
async fn a_check_whose_call_may_have_run_is_not_charged_again() {
    let fake = Arc::new(FakeStore::allowing());
    let store = failover(Some(fake.clone()), 1);
    let p = policy(10, None);
    fake.fail_with(Some(StoreError::Timeout));
    let o = check(&store, &p, "p:a").await;
    assert_eq!(o.source, Source::Fallback);
    assert!(o.outcome.allowed);
    assert!(
        o.outcome.receipt.is_none(),
        "nothing charged in the fallback"
    );
    assert_eq!(o.outcome.remaining, 9, "decided at the real cost");
    // The same, for a batched check's uncounted timeout.
    fake.fail_with(Some(StoreError::Timeout.uncounted()));
    assert!(check(&store, &p, "p:a").await.outcome.receipt.is_none());
    // Refused before it ran: the fallback counts it, and the timeouts
    // above left no trace there.
    fake.fail_with(Some(StoreError::Unavailable("refused".into())));
    let o = check(&store, &p, "p:a").await;
    assert!(o.outcome.receipt.is_some());
    assert_eq!(o.outcome.remaining, 9);
}

/// The checks of one failed batch call count once towards the breaker.
#[tokio::test]
async fn uncounted_failures_do_not_trip_the_breaker() {
    let fake = Arc::new(FakeStore::allowing());
    let store = failover(Some(fake.clone()), 1);
    let p = policy(10, None);
    fake.fail_with(Some(StoreError::Timeout.uncounted()));
    for _ in 0..10 {
        assert_eq!(check(&store, &p, "p:a").await.source, Source::Fallback);
    }
    assert!(!store.is_open());
}

/// What the fallback admitted during an outage is added to the primary, by
/// counter window, before the breaker closes; refunded charges are not.
#[tokio::test]
async fn the_fallbacks_charges_reach_the_primary_when_it_is_back() {
    let fake = Arc::new(FakeStore::allowing());
    let store = failover(Some(fake.clone()), 1);
    let p = policy(100, None);
    fake.fail_with(Some(StoreError::Unavailable("down".into())));
    for _ in 0..60 {
        assert!(check(&store, &p, "p:a").await.outcome.allowed);
    }
    assert!(store.is_open());
    // A refunded fallback charge leaves the journal too.
    let o = check(&store, &p, "p:b").await;
    store
        .refund(&[Refund {
            policy: &p,
            key: "p:b",
            hits: 1,
            receipt: o.outcome.receipt.unwrap(),
            source: Some(o.source),
        }])
        .await
        .unwrap();
    assert_eq!(store.pending_reconcile(), 1);
    fake.fail_with(None);
    assert!(store.probe_once().await);
    assert!(!store.is_open());
    let sent = fake.reconciled();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].key, "p:a");
    assert_eq!(sent[0].hits, 60);
    assert_eq!(sent[0].kind, AlgorithmKind::FixedWindow);
    assert_eq!(sent[0].window_us, 60 * S);
    assert_eq!(sent[0].at_us / sent[0].window_us, T0 / (60 * S));
    assert_eq!(store.pending_reconcile(), 0);
    assert_eq!(store.reconcile_once().await, 0, "nothing left");
}

/// A reconcile that fails keeps the breaker open and the journal whole.
#[tokio::test]
async fn a_failed_reconcile_keeps_the_journal_and_the_fallback() {
    let fake = Arc::new(FakeStore::allowing());
    let store = failover(Some(fake.clone()), 1);
    let p = policy(100, None);
    fake.fail_with(Some(StoreError::Unavailable("down".into())));
    for _ in 0..5 {
        check(&store, &p, "p:a").await;
    }
    assert!(store.is_open());
    // Pings fail too (same fake): the probe stays open, the journal whole.
    assert!(!store.probe_once().await);
    assert_eq!(store.pending_reconcile(), 1);
    fake.fail_with(None);
    assert!(store.probe_once().await);
    assert_eq!(fake.reconciled()[0].hits, 5);
}

/// A reconcile refused for good (not transient) drops the charges and
/// closes the breaker all the same; a transient one keeps both.
#[tokio::test]
async fn only_a_transient_reconcile_failure_keeps_the_fallback() {
    let fake = Arc::new(FakeStore::allowing());
    let store = failover(Some(fake.clone()), 1);
    let p = policy(100, None);
    fake.fail_with(Some(StoreError::Unavailable("down".into())));
    for _ in 0..5 {
        check(&store, &p, "p:a").await;
    }
    fake.fail_with(None);
    fake.fail_reconcile_with(Some(StoreError::Timeout));
    assert!(!store.probe_once().await);
    assert_eq!(store.pending_reconcile(), 1);
    fake.fail_reconcile_with(Some(StoreError::Protocol("WRONGTYPE".into())));
    assert!(store.probe_once().await, "never held off Redis for good");
    assert_eq!(store.pending_reconcile(), 0);
}

#[tokio::test]
async fn a_reset_while_open_clears_the_fallback_and_says_the_primary_was_not() {
    let store = failover(None, 1);
    let p = policy(2, None);
    for _ in 0..2 {
        assert!(check(&store, &p, "p:a").await.outcome.allowed);
    }
    assert!(!check(&store, &p, "p:a").await.outcome.allowed);
    let clear = crate::Clear {
        policy: &p,
        key: "p:a",
    };
    let error = store.clear(&[clear]).await.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    assert!(check(&store, &p, "p:a").await.outcome.allowed);
    assert!(check(&store, &p, "p:a").await.outcome.allowed);
    // An announcement from another sidecar forgets the fallback's too.
    assert!(!check(&store, &p, "p:a").await.outcome.allowed);
    store.forget(&["p:a"]);
    assert!(check(&store, &p, "p:a").await.outcome.allowed);
    // With the primary in use, it is cleared there.
    let fake = Arc::new(FakeStore::allowing());
    assert!(store.install_primary(fake));
    store.clear(&[clear]).await.unwrap();
}
