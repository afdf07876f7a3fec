//! Property test of the policy index: for random policy sets and random
//! checks, `PolicySet::applicable` returns exactly what trying every policy
//! in configuration order returns (the reference, kept here), same indices,
//! same policies, same order.
//!
//! Policies draw their `match` conditions, key and domain from a few
//! attributes, values and domains, so checks match some, several or none;
//! some policies have no `match`, some list several values, some repeat one.

use std::sync::Arc;

use floodgate_core::{Attributes, Policy, PolicySet, PolicySpec};
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;

const NAMES: [&str; 4] = ["tenant", "user", "endpoint", "ip"];
const VALUES: [&str; 4] = ["a", "b", "c", ""];
const DOMAINS: [&str; 2] = ["edge", "internal"];

/// The linear scan the index replaces: every policy tried in turn.
fn reference<'a>(
    set: &'a PolicySet,
    attributes: &Attributes,
    domain: Option<&str>,
) -> Vec<(usize, &'a Arc<Policy>)> {
    set.iter()
        .enumerate()
        .filter(|(_, p)| p.applies(attributes, domain))
        .collect()
}

#[derive(Debug, Clone)]
struct Shape {
    matches: Vec<(&'static str, Vec<&'static str>)>,
    key: Vec<&'static str>,
    domain: Option<&'static str>,
}

fn shape() -> impl Strategy<Value = Shape> {
    let condition = (select(&NAMES[..]), vec(select(&VALUES[..]), 1..4));
    (
        vec(condition, 0..3),
        vec(select(&["user", "ip", "user|ip", "endpoint"][..]), 0..3),
        option::weighted(0.3, select(&DOMAINS[..])),
    )
        .prop_map(|(matches, key, domain)| Shape {
            matches,
            key,
            domain,
        })
}

/// The set of valid policies among `shapes`, named by position.
fn set_of(shapes: &[Shape]) -> PolicySet {
    let policies = shapes
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            Policy::new(PolicySpec {
                name: format!("p{i}"),
                matches: (s.matches.iter())
                    .map(|(n, vs)| (n.to_string(), vs.iter().map(|v| v.to_string()).collect()))
                    .collect(),
                key: s.key.iter().map(|k| k.to_string()).collect(),
                limit: 10,
                window_us: Some(60_000_000),
                domain: s.domain.map(str::to_string),
                ..PolicySpec::default()
            })
            .ok()
        })
        .collect();
    PolicySet::new(policies).expect("unique names")
}

fn attributes() -> impl Strategy<Value = Attributes> {
    btree_map(select(&NAMES[..]), select(&VALUES[..]), 0..=NAMES.len()).prop_map(|m| {
        m.into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    })
}

fn check_against_reference(set: &PolicySet, a: &Attributes, domain: Option<&str>) {
    let indexed: Vec<_> = set.applicable(a, domain).collect();
    let expected = reference(set, a, domain);
    assert_eq!(
        indexed
            .iter()
            .map(|(i, p)| (*i, p.name()))
            .collect::<Vec<_>>(),
        expected
            .iter()
            .map(|(i, p)| (*i, p.name()))
            .collect::<Vec<_>>(),
        "attributes {a:?}, domain {domain:?}"
    );
    for ((_, p), (_, q)) in indexed.iter().zip(&expected) {
        assert!(Arc::ptr_eq(p, q));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn indexed_applicable_equals_the_linear_scan(
        shapes in vec(shape(), 0..40),
        checks in vec(
            (attributes(), option::weighted(0.4, select(&["edge", "internal", "other"][..]))),
            1..8,
        ),
    ) {
        let set = set_of(&shapes);
        for (a, domain) in &checks {
            check_against_reference(&set, a, *domain);
        }
    }
}

/// Many policies on one attribute, each a tenant of its own, among policies
/// every check tries: the right ones, in order, whichever tenant asks.
#[test]
fn one_policy_per_tenant_among_global_ones() {
    let spec = |name: String, tenant: Option<String>| PolicySpec {
        name,
        matches: tenant
            .map(|t| vec![("tenant".into(), vec![t])])
            .unwrap_or_default(),
        key: vec!["user".into()],
        limit: 10,
        window_us: Some(60_000_000),
        ..PolicySpec::default()
    };
    let mut policies = vec![Policy::new(spec("first".into(), None)).unwrap()];
    for n in 0..1_000 {
        policies.push(Policy::new(spec(format!("tenant-{n}"), Some(format!("t{n}")))).unwrap());
    }
    policies.push(Policy::new(spec("last".into(), None)).unwrap());
    let set = PolicySet::new(policies).unwrap();
    for n in [0, 1, 499, 999] {
        let a: Attributes = [("tenant", format!("t{n}")), ("user", "u".into())]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let names: Vec<String> = set
            .applicable(&a, None)
            .map(|(i, p)| format!("{i}:{}", p.name()))
            .collect();
        assert_eq!(
            names,
            ["0:first", &format!("{}:tenant-{n}", n + 1), "1001:last"]
        );
        check_against_reference(&set, &a, None);
    }
}
