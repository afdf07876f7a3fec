use super::*;

const S: u64 = 1_000_000;

fn spec(name: &str) -> PolicySpec {
    PolicySpec {
        name: name.into(),
        key: vec!["user".into()],
        limit: 10,
        window_us: Some(60 * S),
        ..PolicySpec::default()
    }
}

fn attrs(pairs: &[(&str, &str)]) -> Attributes {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn fields(spec: PolicySpec) -> Vec<&'static str> {
    Policy::new(spec)
        .unwrap_err()
        .into_iter()
        .map(|e| e.field)
        .collect()
}

#[test]
fn a_valid_policy_builds() {
    let p = Policy::new(spec("ai-per-user")).unwrap();
    assert_eq!(p.name(), "ai-per-user");
    assert_eq!(p.kind(), AlgorithmKind::SlidingWindow);
    assert_eq!(p.burst(), 10);
}

#[test]
fn invalid_quotas_cannot_be_built() {
    assert_eq!(
        fields(PolicySpec {
            limit: 0,
            ..spec("p")
        }),
        ["limit"]
    );
    assert_eq!(
        fields(PolicySpec {
            window_us: Some(0),
            ..spec("p")
        }),
        ["window"]
    );
    assert_eq!(
        fields(PolicySpec {
            window_us: None,
            ..spec("p")
        }),
        ["window"]
    );
    assert_eq!(fields(spec("bad name")), ["name"]);
    assert_eq!(
        fields(PolicySpec {
            algorithm: AlgorithmKind::SlidingLog,
            limit: 10_001,
            ..spec("p")
        }),
        ["limit"]
    );
    assert_eq!(
        fields(PolicySpec {
            algorithm: AlgorithmKind::TokenBucket,
            burst: Some(0),
            ..spec("p")
        }),
        ["burst"]
    );
    assert_eq!(
        fields(PolicySpec {
            burst: Some(5),
            ..spec("p")
        }),
        ["burst"]
    );
    assert_eq!(
        fields(PolicySpec {
            lease_timeout_us: Some(S),
            ..spec("p")
        }),
        ["lease_timeout"]
    );
    assert_eq!(
        fields(PolicySpec {
            key: vec![],
            ..spec("p")
        }),
        ["key"]
    );
    assert_eq!(
        fields(PolicySpec {
            key: vec!["user".into(), "user".into()],
            ..spec("p")
        }),
        ["key"]
    );
    // Several problems are all reported.
    assert_eq!(
        fields(PolicySpec {
            limit: 0,
            window_us: None,
            ..spec("bad name")
        }),
        ["name", "limit", "window"]
    );
}

#[test]
fn concurrency_uses_lease_timeout_not_window() {
    let c = Policy::new(PolicySpec {
        algorithm: AlgorithmKind::Concurrency,
        window_us: None,
        ..spec("c")
    })
    .unwrap();
    assert_eq!(c.window_us(), DEFAULT_LEASE_TIMEOUT_US);
    assert_eq!(
        fields(PolicySpec {
            algorithm: AlgorithmKind::Concurrency,
            ..spec("c")
        }),
        ["window"]
    );
}

#[test]
fn applies_needs_every_match_and_key_attribute() {
    let p = Policy::new(PolicySpec {
        matches: vec![("endpoint".into(), vec!["ai".into(), "chat".into()])],
        ..spec("p")
    })
    .unwrap();
    assert!(p.applies(&attrs(&[("endpoint", "ai"), ("user", "u")]), None));
    assert!(p.applies(&attrs(&[("endpoint", "chat"), ("user", "u")]), None));
    assert!(!p.applies(&attrs(&[("endpoint", "auth"), ("user", "u")]), None));
    assert!(!p.applies(&attrs(&[("endpoint", "ai")]), None));
    assert_eq!(
        p.counter_key(&attrs(&[("endpoint", "ai"), ("user", "a:b")])),
        "p:a%3Ab"
    );
}

#[test]
fn domains_select_policies() {
    let any = Policy::new(spec("any")).unwrap();
    let edge = Policy::new(PolicySpec {
        domain: Some("edge".into()),
        ..spec("edge")
    })
    .unwrap();
    let a = attrs(&[("user", "u")]);
    assert!(any.applies(&a, None));
    assert!(any.applies(&a, Some("edge")));
    assert!(edge.applies(&a, Some("edge")));
    assert!(!edge.applies(&a, Some("other")));
    assert!(!edge.applies(&a, None));
}

#[test]
fn set_rejects_duplicate_names_and_keeps_order() {
    let dup = PolicySet::new(vec![
        Policy::new(spec("a")).unwrap(),
        Policy::new(spec("a")).unwrap(),
    ]);
    assert_eq!(
        dup.unwrap_err(),
        [PolicySetError::Duplicate {
            policy: 1,
            name: "a".into()
        }]
    );
    let set = PolicySet::new(vec![
        Policy::new(spec("b")).unwrap(),
        Policy::new(spec("a")).unwrap(),
    ])
    .unwrap();
    let names: Vec<_> = set
        .applicable(&attrs(&[("user", "u")]), None)
        .map(|(i, p)| format!("{i}:{}", p.name()))
        .collect();
    assert_eq!(names, ["0:b", "1:a"]);
    assert!(set.get("a").is_some());
}

#[test]
fn scaled_divides_rounding_up() {
    let p = Policy::new(PolicySpec {
        limit: 10,
        ..spec("p")
    })
    .unwrap();
    let local = p.scaled(4);
    assert_eq!(local.limit(), 3);
    assert_eq!(local.name(), "p");
}

#[test]
fn a_key_entry_may_name_a_stand_in() {
    let p = Policy::new(PolicySpec {
        key: vec!["user | ip".into(), "endpoint".into()],
        ..spec("p")
    })
    .unwrap();
    assert_eq!(p.key(), ["user|ip", "endpoint"]);
    let user = attrs(&[("user", "u1"), ("ip", "127.0.0.1"), ("endpoint", "ai")]);
    let anonymous = attrs(&[("ip", "127.0.0.1"), ("endpoint", "ai")]);
    assert!(p.applies(&user, None));
    assert!(p.applies(&anonymous, None));
    assert!(!p.applies(&attrs(&[("endpoint", "ai")]), None));
    assert!(!p.applies(&attrs(&[("user", "u1")]), None));
    // The first alternative keeps the key it always had; a stand-in is named.
    assert_eq!(p.counter_key(&user), "p:u1:ai");
    assert_eq!(p.counter_key(&anonymous), "p:ip=127.0.0.1:ai");
    // A user id spelled like a stand-in cannot reach the address's counter.
    let forger = attrs(&[("user", "ip=127.0.0.1"), ("endpoint", "ai")]);
    assert_ne!(p.counter_key(&forger), p.counter_key(&anonymous));
    let plain = Policy::new(spec("p")).unwrap();
    assert_eq!(plain.counter_key(&user), "p:u1");
}

#[test]
fn bad_alternatives_are_refused_at_their_entry() {
    for (key, index) in [
        (vec!["user|"], 0),
        (vec!["user", "ip||user"], 1),
        (vec!["user|user"], 0),
        (vec!["user|ip", "ip"], 1),
        (vec!["user ip"], 0),
    ] {
        let errors = Policy::new(PolicySpec {
            key: key.iter().map(|k| k.to_string()).collect(),
            ..spec("p")
        })
        .unwrap_err();
        assert!(!errors.is_empty(), "{key:?}");
        for e in errors {
            assert_eq!(
                (e.field, e.index),
                ("key", Some(index)),
                "{key:?}: {}",
                e.message
            );
        }
    }
}
