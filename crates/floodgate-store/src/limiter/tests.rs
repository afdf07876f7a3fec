use super::*;
use crate::{LocalConfig, LocalStore};
use floodgate_core::{AttributeError, FallbackMode, ManualClock, Mode, PolicySpec};

const S: u64 = 1_000_000;

fn spec(name: &str, limit: u64) -> PolicySpec {
    PolicySpec {
        name: name.into(),
        key: vec!["user".into()],
        limit,
        window_us: Some(60 * S),
        algorithm: AlgorithmKind::FixedWindow,
        ..PolicySpec::default()
    }
}

fn limiter(specs: Vec<PolicySpec>) -> Limiter {
    let policies = specs.into_iter().map(|s| Policy::new(s).unwrap()).collect();
    let clock = Arc::new(ManualClock::new(1_700_000_000 * S));
    let store = LocalStore::new(LocalConfig::default(), clock, Source::Local);
    Limiter::new(PolicySet::new(policies).unwrap(), Arc::new(store))
}

fn attrs(pairs: &[(&str, &str)]) -> Attributes {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn check(l: &Limiter, a: &Attributes, hits: u64) -> Verdict {
    l.check(Check {
        attributes: a,
        hits,
        domain: None,
        reserve: false,
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn exactly_the_limit_then_denied() {
    let l = limiter(vec![PolicySpec {
        matches: vec![("endpoint".into(), vec!["ai".into()])],
        algorithm: AlgorithmKind::SlidingWindow,
        ..spec("ai", 500)
    }]);
    let a = attrs(&[("user", "u1"), ("endpoint", "ai")]);
    let mut allowed = 0;
    for _ in 0..600 {
        if check(&l, &a, 1).await.allowed {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 500);
    let v = check(&l, &a, 1).await;
    assert_eq!(v.deciding().unwrap().policy.as_ref(), "ai");
    assert!(v.deciding().unwrap().retry_after_us > 0);
}

#[tokio::test]
async fn no_applicable_policy_allows() {
    let l = limiter(vec![spec("p", 1)]);
    let v = check(&l, &attrs(&[("ip", "1.2.3.4")]), 1).await;
    assert!(v.allowed);
    assert!(v.statuses.is_empty());
    assert_eq!(v.decider, None);
}

#[tokio::test]
async fn a_denied_check_is_refunded_everywhere() {
    let l = limiter(vec![spec("wide", 10), spec("narrow", 1)]);
    let a = attrs(&[("user", "u1")]);
    let first = check(&l, &a, 1).await;
    assert!(first.allowed);
    assert_eq!(first.deciding().unwrap().policy.as_ref(), "narrow");
    for _ in 0..5 {
        let denied = check(&l, &a, 1).await;
        assert!(!denied.allowed);
        assert_eq!(denied.deciding().unwrap().policy.as_ref(), "narrow");
        // "wide" allowed it, then was refunded.
        assert!(denied.statuses[0].allowed);
    }
    let peek = check(&l, &a, 0).await;
    assert_eq!(peek.statuses[0].remaining, 9);
}

#[tokio::test]
async fn shadow_policies_report_but_never_deny() {
    let l = limiter(vec![PolicySpec {
        mode: Mode::Shadow,
        ..spec("dark", 1)
    }]);
    let a = attrs(&[("user", "u1")]);
    assert!(check(&l, &a, 1).await.allowed);
    let v = check(&l, &a, 1).await;
    assert!(v.allowed);
    assert!(!v.statuses[0].allowed);
    assert!(v.statuses[0].shadow);

    let l = limiter(vec![spec("p", 1)]);
    l.set_shadow(true);
    check(&l, &a, 1).await;
    assert!(check(&l, &a, 1).await.allowed);
}

#[tokio::test]
async fn leases_are_returned_and_released() {
    let l = limiter(vec![PolicySpec {
        algorithm: AlgorithmKind::Concurrency,
        window_us: None,
        fallback: Some(FallbackMode::Deny),
        ..spec("llm", 1)
    }]);
    let a = attrs(&[("user", "u/1")]);
    let v = check(&l, &a, 1).await;
    let lease = v.lease.clone().unwrap();
    assert!(lease.starts_with("llm:u%2F1/"));
    assert!(!check(&l, &a, 1).await.allowed);
    l.release(&lease).await.unwrap();
    l.release(&lease).await.unwrap();
    assert!(check(&l, &a, 1).await.allowed);
    assert!(matches!(
        l.release("nonsense").await,
        Err(LimitError::InvalidLease(_))
    ));
}

#[tokio::test]
async fn a_denied_concurrency_check_returns_no_lease_and_frees_its_slot() {
    let l = limiter(vec![
        PolicySpec {
            algorithm: AlgorithmKind::Concurrency,
            window_us: None,
            ..spec("llm", 1)
        },
        spec("rate", 1),
    ]);
    let a = attrs(&[("user", "u1")]);
    let v = check(&l, &a, 1).await;
    l.release(v.lease.as_deref().unwrap()).await.unwrap();
    let denied = check(&l, &a, 1).await;
    assert!(!denied.allowed);
    assert_eq!(denied.lease, None);
    assert_eq!(check(&l, &a, 0).await.statuses[0].remaining, 1);
}

#[tokio::test]
async fn bad_input_counts_nothing() {
    let l = limiter(vec![spec("p", 1)]);
    let long = attrs(&[("user", &"x".repeat(300))]);
    let err = l
        .check(Check {
            attributes: &long,
            hits: 1,
            domain: None,
            reserve: false,
        })
        .await
        .unwrap_err();
    assert!(err.is_invalid_input());
    let a = attrs(&[("user", "u1")]);
    let err = l
        .check(Check {
            attributes: &a,
            hits: u64::MAX,
            domain: None,
            reserve: false,
        })
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        LimitError::InvalidAttributes(AttributeError::TooManyHits(_))
    ));
    assert!(check(&l, &a, 1).await.allowed);
}

#[tokio::test]
async fn counters_survive_a_reload_that_keeps_name_and_key() {
    let l = limiter(vec![spec("p", 2)]);
    let a = attrs(&[("user", "u1")]);
    check(&l, &a, 2).await;
    l.replace_policies(PolicySet::new(vec![Policy::new(spec("p", 3)).unwrap()]).unwrap());
    let v = check(&l, &a, 0).await;
    assert_eq!(v.statuses[0].limit, 3);
    assert_eq!(v.statuses[0].remaining, 1);
}

#[tokio::test]
async fn checks_that_stand_together_are_refunded_together() {
    let l = limiter(vec![
        PolicySpec {
            key: vec!["ip".into()],
            ..spec("per-ip", 10)
        },
        spec("per-user", 1),
    ]);
    let by_ip = attrs(&[("ip", "1.2.3.4")]);
    let by_user = attrs(&[("user", "u1")]);
    let checks = [
        Check {
            attributes: &by_ip,
            hits: 1,
            domain: None,
            reserve: false,
        },
        Check {
            attributes: &by_user,
            hits: 1,
            domain: None,
            reserve: false,
        },
    ];
    let first = l.check_all(&checks).await.unwrap();
    assert!(first.iter().all(|v| v.allowed));
    let second = l.check_all(&checks).await.unwrap();
    assert!(second[0].allowed);
    assert!(!second[1].allowed);
    let combined = Verdict::combine(&second);
    assert!(!combined.allowed);
    assert_eq!(combined.deciding().unwrap().policy.as_ref(), "per-user");
    // The per-ip charge of the denied request was refunded.
    assert_eq!(check(&l, &by_ip, 0).await.statuses[0].remaining, 9);
}

#[tokio::test]
async fn where_nobody_can_release_concurrency_policies_are_skipped() {
    let l = limiter(vec![
        PolicySpec {
            algorithm: AlgorithmKind::Concurrency,
            window_us: None,
            ..spec("llm", 1)
        },
        spec("rate", 3),
    ]);
    let a = attrs(&[("user", "u1")]);
    let check = Check {
        attributes: &a,
        hits: 1,
        domain: None,
        reserve: false,
    };
    let skipped = LeaseMode::Skipped("test");
    // Finished requests that could never release a lease: never capped by
    // the concurrency policy, still counted by the others.
    for _ in 0..3 {
        let v = l
            .check_all_in(&l.snapshot(), &[check], skipped)
            .await
            .unwrap();
        assert!(v[0].allowed);
        assert_eq!(v[0].lease, None);
        assert_eq!(v[0].statuses.len(), 1);
        assert_eq!(&*v[0].statuses[0].policy, "rate");
    }
    let v = l
        .check_all_in(&l.snapshot(), &[check], skipped)
        .await
        .unwrap();
    assert!(!v[0].allowed);
    // Where leases are held, the concurrency policy applies as before and
    // no slot was taken by the skipped checks.
    let held = l
        .check_all_in(
            &l.snapshot(),
            &[Check { hits: 0, ..check }],
            LeaseMode::Held,
        )
        .await
        .unwrap();
    assert_eq!(&*held[0].statuses[0].policy, "llm");
    assert_eq!(held[0].statuses[0].remaining, 1);
}

/// A source on which another writer (a reload) swaps new policies in
/// between a reader's load and its write: the first `load` or `update`
/// swaps `reload` in just after reading.
struct RacingSource {
    inner: ArcSwap<PolicySnapshot>,
    reload: std::sync::Mutex<Option<Arc<PolicySnapshot>>>,
}

impl RacingSource {
    fn race(&self) {
        if let Some(reload) = self.reload.lock().unwrap().take() {
            self.inner.store(reload);
        }
    }
}

impl PolicySource for RacingSource {
    fn load(&self) -> Arc<PolicySnapshot> {
        let current = self.inner.load_full();
        self.race();
        current
    }

    fn update(&self, change: &dyn Fn(&Arc<PolicySnapshot>) -> Arc<PolicySnapshot>) {
        self.inner.rcu(|current| {
            let next = change(current);
            self.race();
            next
        });
    }
}

#[test]
fn shadow_and_policy_changes_never_undo_a_concurrent_reload() {
    let set = |name: &str| PolicySet::new(vec![Policy::new(spec(name, 1)).unwrap()]).unwrap();
    let clock = Arc::new(ManualClock::new(1_700_000_000 * S));
    let store: Arc<dyn Store> = Arc::new(LocalStore::new(
        LocalConfig::default(),
        clock,
        Source::Local,
    ));
    // set_shadow racing a reload: the reload's policies stay, shadow on.
    let source = Arc::new(RacingSource {
        inner: ArcSwap::from_pointee(PolicySnapshot::new(set("old"), false)),
        reload: std::sync::Mutex::new(Some(Arc::new(PolicySnapshot::new(set("new"), false)))),
    });
    let l = Limiter::with_source(source.clone(), store.clone());
    l.set_shadow(true);
    assert!(l.policies().get("new").is_some(), "the reload was undone");
    assert!(l.shadow());
    // replace_policies racing a reload that turned shadow mode on: the
    // replaced policies keep the shadow mode the reload set.
    let source = Arc::new(RacingSource {
        inner: ArcSwap::from_pointee(PolicySnapshot::new(set("old"), false)),
        reload: std::sync::Mutex::new(Some(Arc::new(PolicySnapshot::new(set("new"), true)))),
    });
    let l = Limiter::with_source(source, store);
    l.replace_policies(set("replaced"));
    assert!(l.policies().get("replaced").is_some());
    assert!(l.shadow(), "the reload's shadow mode was undone");
}

#[tokio::test]
async fn a_reset_clears_every_applicable_counter_or_the_named_one() {
    let l = limiter(vec![spec("a", 2), spec("b", 3)]);
    let u1 = attrs(&[("user", "u1")]);
    let u2 = attrs(&[("user", "u2")]);
    for _ in 0..2 {
        check(&l, &u1, 1).await;
        check(&l, &u2, 1).await;
    }
    assert!(!check(&l, &u1, 1).await.allowed);
    let cleared = l.reset(&u1, Some("a")).await.unwrap();
    assert_eq!(cleared.len(), 1);
    assert_eq!(cleared[0].key, "a:u1");
    let v = check(&l, &u1, 0).await;
    assert_eq!((v.statuses[0].remaining, v.statuses[1].remaining), (2, 1));
    assert_eq!(l.reset(&u1, None).await.unwrap().len(), 2);
    let v = check(&l, &u1, 0).await;
    assert_eq!((v.statuses[0].remaining, v.statuses[1].remaining), (2, 3));
    // Another key is untouched.
    let v = check(&l, &u2, 0).await;
    assert_eq!(v.statuses[0].remaining, 0);
    // Attributes no policy applies to: nothing.
    assert!(l
        .reset(&attrs(&[("ip", "1")]), None)
        .await
        .unwrap()
        .is_empty());
    // Malformed attributes: an error, nothing cleared.
    let bad = attrs(&[("user", &"x".repeat(300))]);
    assert!(l.reset(&bad, None).await.is_err());
}

#[tokio::test]
async fn denials_are_counted_per_policy_and_key_peeks_are_not() {
    let l = limiter(vec![spec("a", 1)]);
    let hammer = attrs(&[("user", "hammer")]);
    let calm = attrs(&[("user", "calm")]);
    for _ in 0..6 {
        check(&l, &hammer, 1).await;
    }
    for _ in 0..2 {
        check(&l, &calm, 1).await;
        check(&l, &hammer, 0).await;
    }
    let report = l.denials().top("a", 10);
    assert_eq!(report.total, 6);
    assert_eq!(report.entries[0].key, "a:hammer");
    assert_eq!(report.entries[0].count, 5);
    assert_eq!(report.entries[1].key, "a:calm");
    assert!(l.denials().top("other", 10).entries.is_empty());
}
