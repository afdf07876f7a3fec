use std::sync::Arc;

use floodgate_core::{
    AlgorithmKind, Attributes, ManualClock, Policy, PolicySet, PolicySpec, SettlementError,
    SettlementPart,
};

use crate::{Check, LimitError, Limiter, LocalConfig, LocalStore, Source, Verdict};

const S: u64 = 1_000_000;

fn spec(name: &str, limit: u64, kind: AlgorithmKind, settle: bool) -> PolicySpec {
    PolicySpec {
        name: name.into(),
        key: vec!["user".into()],
        limit,
        window_us: (kind != AlgorithmKind::Concurrency).then_some(60 * S),
        algorithm: kind,
        settle,
        ..PolicySpec::default()
    }
}

fn limiter(specs: Vec<PolicySpec>) -> Limiter {
    let policies = specs.into_iter().map(|s| Policy::new(s).unwrap()).collect();
    let clock = Arc::new(ManualClock::new(1_700_000_000 * S));
    let store = LocalStore::new(LocalConfig::default(), clock, Source::Local);
    Limiter::new(PolicySet::new(policies).unwrap(), Arc::new(store))
}

fn user(u: &str) -> Attributes {
    [("user".to_string(), u.to_string())].into_iter().collect()
}

async fn check(l: &Limiter, a: &Attributes, hits: u64, reserve: bool) -> Verdict {
    l.check(Check {
        attributes: a,
        hits,
        domain: None,
        reserve,
    })
    .await
    .unwrap()
}

fn remaining(v: &Verdict) -> u64 {
    v.deciding().unwrap().remaining
}

#[tokio::test]
async fn a_reservation_settles_once_with_the_actual_cost() {
    let l = limiter(vec![spec(
        "tokens",
        1_000,
        AlgorithmKind::SlidingWindow,
        true,
    )]);
    let a = user("alice");
    let v = check(&l, &a, 600, true).await;
    let id = v.settlement.expect("a settlement id");
    assert!(id.starts_with("tokens:alice/"), "{id}");
    let done = l.settle(&id, 150).await.unwrap();
    assert_eq!(
        (done.estimate, done.actual, done.charged()),
        (600, 150, -450)
    );
    assert_eq!(remaining(&check(&l, &a, 0, false).await), 850);
    let again = l.settle(&id, 0).await.unwrap_err();
    assert!(matches!(
        again,
        LimitError::Settlement(SettlementError::Spent)
    ));
    assert!(again.is_conflict() && !again.is_invalid_input());
    assert_eq!(remaining(&check(&l, &a, 0, false).await), 850);
}

#[tokio::test]
async fn no_settlement_without_reserve_or_a_settleable_policy_or_when_denied() {
    let l = limiter(vec![
        spec("tokens", 100, AlgorithmKind::FixedWindow, true),
        spec("plain", 1_000, AlgorithmKind::FixedWindow, false),
    ]);
    let a = user("bob");
    assert_eq!(check(&l, &a, 10, false).await.settlement, None);
    let v = check(&l, &a, 10, true).await;
    let id = v.settlement.unwrap();
    assert_eq!(SettlementPart::decode(&id).unwrap().len(), 1, "only tokens");
    // The policy that does not settle counts the call, not its tokens:
    // 10 from the plain check, 1 from the reserving one.
    let plain = v.statuses.iter().find(|s| &*s.policy == "plain").unwrap();
    assert_eq!(plain.remaining, 1_000 - 11);
    let denied = check(&l, &a, 500, true).await;
    assert!(!denied.allowed);
    assert_eq!(denied.settlement, None);
}

#[tokio::test]
async fn an_overrun_denies_the_next_checks() {
    let l = limiter(vec![spec(
        "tokens",
        1_000,
        AlgorithmKind::TokenBucket,
        true,
    )]);
    let a = user("carol");
    let id = check(&l, &a, 100, true).await.settlement.unwrap();
    assert_eq!(l.settle(&id, 2_500).await.unwrap().charged(), 2_400);
    let v = check(&l, &a, 1, true).await;
    assert!(!v.allowed);
    assert!(
        v.deciding().unwrap().retry_after_us > 60 * S,
        "1 500 tokens in debt"
    );
}

#[tokio::test]
async fn forged_malformed_and_huge_settles_change_nothing() {
    let l = limiter(vec![spec(
        "tokens",
        1_000,
        AlgorithmKind::FixedWindow,
        true,
    )]);
    let a = user("dave");
    let id = check(&l, &a, 500, true).await.settlement.unwrap();
    let mut part = SettlementPart::decode(&id).unwrap().remove(0);
    let forged_nonce = SettlementPart::encode(&[SettlementPart {
        nonce: part.nonce ^ 1,
        ..part.clone()
    }]);
    let e = l.settle(&forged_nonce, 0).await.unwrap_err();
    assert!(matches!(
        e,
        LimitError::Settlement(SettlementError::Unknown)
    ));
    assert!(e.is_invalid_input());
    // Someone else's counter with this nonce: nothing there either.
    part.counter_key = "tokens:mallory".into();
    let other = SettlementPart::encode(&[part]);
    assert!(l.settle(&other, 0).await.unwrap_err().is_invalid_input());
    for bad in ["", "garbage", "tokens:dave/xyz/1", &format!("{id},")] {
        assert!(
            l.settle(bad, 0).await.unwrap_err().is_invalid_input(),
            "{bad}"
        );
    }
    let huge = l.settle(&id, u64::MAX).await.unwrap_err();
    assert!(matches!(
        huge,
        LimitError::Settlement(SettlementError::ActualTooLarge(_))
    ));
    assert_eq!(remaining(&check(&l, &a, 0, false).await), 500);
    // The genuine id still settles after all that.
    assert_eq!(l.settle(&id, 500).await.unwrap().charged(), 0);
}

#[tokio::test]
async fn a_removed_policy_makes_its_reservation_lapse() {
    let l = limiter(vec![spec(
        "tokens",
        1_000,
        AlgorithmKind::FixedWindow,
        true,
    )]);
    let id = check(&l, &user("erin"), 5, true).await.settlement.unwrap();
    l.replace_policies(PolicySet::default());
    let e = l.settle(&id, 1).await.unwrap_err();
    assert!(matches!(e, LimitError::Settlement(SettlementError::Lapsed)));
}

#[tokio::test]
async fn a_lease_and_a_settlement_come_from_one_check() {
    let l = limiter(vec![
        spec("calls", 2, AlgorithmKind::Concurrency, false),
        spec("tokens", 1_000, AlgorithmKind::SlidingWindow, true),
    ]);
    let a = user("frank");
    let v = check(&l, &a, 300, true).await;
    assert!(v.allowed);
    let (lease, id) = (v.lease.unwrap(), v.settlement.unwrap());
    l.release(&lease).await.unwrap();
    assert_eq!(l.settle(&id, 100).await.unwrap().parts, 1);
}

/// While the fallback answers (no primary here), checks do not reserve:
/// the estimate stands and no id is issued; a settle cannot be applied
/// (a store error: 503, not the caller's fault).
#[tokio::test]
async fn the_fallback_issues_no_settlement_and_settles_nothing() {
    use crate::{FailoverConfig, FailoverStore};
    use floodgate_core::FallbackMode;
    let clock = Arc::new(ManualClock::new(1_700_000_000 * S));
    let local = LocalStore::new(LocalConfig::default(), clock, Source::Fallback);
    let store = FailoverStore::new(
        None,
        Arc::new(local),
        FailoverConfig {
            mode: FallbackMode::Local,
            instances: 1,
            probe_interval: std::time::Duration::from_millis(200),
            failure_threshold: 3,
            trip: Default::default(),
        },
    );
    let policies =
        vec![Policy::new(spec("tokens", 1_000, AlgorithmKind::FixedWindow, true)).unwrap()];
    let l = Limiter::new(PolicySet::new(policies).unwrap(), Arc::new(store));
    let v = check(&l, &user("gina"), 100, true).await;
    assert!(v.allowed);
    assert_eq!(v.settlement, None);
    let id = "tokens:gina/0000000000000000000000000000000a/1700000000000000";
    let e = l.settle(id, 0).await.unwrap_err();
    assert!(matches!(e, LimitError::Store(_)), "{e:?}");
    assert!(!e.is_invalid_input() && !e.is_conflict());
}
