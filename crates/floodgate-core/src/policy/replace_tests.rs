//! Replacement: which policies are in force, and which sets are refused.

use super::*;
use crate::attributes::Attributes;
use crate::policy::{Mode, PolicySet, PolicySpec};

fn spec(name: &str, matches: &[(&str, &str)], replaces: &[&str]) -> PolicySpec {
    PolicySpec {
        name: name.into(),
        matches: (matches.iter())
            .map(|(n, v)| (n.to_string(), vec![v.to_string()]))
            .collect(),
        key: vec!["user".into()],
        limit: 10,
        window_us: Some(60_000_000),
        replaces: replaces.iter().map(|s| s.to_string()).collect(),
        ..PolicySpec::default()
    }
}

fn set(specs: Vec<PolicySpec>) -> PolicySet {
    PolicySet::new(specs.into_iter().map(|s| Policy::new(s).unwrap()).collect()).unwrap()
}

fn errors(specs: Vec<PolicySpec>) -> Vec<PolicySetError> {
    PolicySet::new(specs.into_iter().map(|s| Policy::new(s).unwrap()).collect()).unwrap_err()
}

fn attrs(pairs: &[(&str, &str)]) -> Attributes {
    (pairs.iter())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn in_force(set: &PolicySet, pairs: &[(&str, &str)]) -> Vec<String> {
    let a = attrs(pairs);
    let names = set.applicable(&a, None).map(|(_, p)| p.name().to_string());
    names.collect()
}

fn replaced_by(set: &PolicySet, by: &str, pairs: &[(&str, &str)]) -> Vec<String> {
    let a = attrs(pairs);
    let by = set.get(by).unwrap();
    let names = set.replaced_by(by, &a, None).map(|p| p.name().to_string());
    names.collect()
}

#[test]
fn a_tier_takes_the_place_of_the_policy_it_replaces() {
    // The replacing policy first: the order in the file does not matter.
    let set = set(vec![
        spec(
            "ai-pro",
            &[("endpoint", "ai"), ("plan", "pro")],
            &["ai-per-user"],
        ),
        spec("ai-per-user", &[("endpoint", "ai")], &[]),
        spec("global", &[], &[]),
    ]);
    assert!(set.has_replacements());
    let pro = [("endpoint", "ai"), ("plan", "pro"), ("user", "u")];
    assert_eq!(in_force(&set, &pro), ["ai-pro", "global"]);
    assert_eq!(replaced_by(&set, "ai-pro", &pro), ["ai-per-user"]);
    let free = [("endpoint", "ai"), ("plan", "free"), ("user", "u")];
    assert_eq!(in_force(&set, &free), ["ai-per-user", "global"]);
    let anonymous = [("endpoint", "ai"), ("user", "u")];
    assert_eq!(in_force(&set, &anonymous), ["ai-per-user", "global"]);
    // Not for the checks of another endpoint: nothing to replace.
    let other = [("endpoint", "x"), ("plan", "pro"), ("user", "u")];
    assert_eq!(in_force(&set, &other), ["global"]);
    assert!(replaced_by(&set, "ai-pro", &other).is_empty());
}

#[test]
fn replacement_follows_chains_even_through_policies_that_do_not_apply() {
    let set = set(vec![
        spec("free", &[], &[]),
        spec("pro", &[("plan", "pro")], &["free"]),
        spec("enterprise", &[("plan", "enterprise")], &["pro"]),
    ]);
    // `pro` does not apply to an enterprise check, `free` does: set aside.
    let enterprise = [("plan", "enterprise"), ("user", "u")];
    assert_eq!(in_force(&set, &enterprise), ["enterprise"]);
    assert_eq!(replaced_by(&set, "enterprise", &enterprise), ["free"]);
    assert_eq!(in_force(&set, &[("plan", "pro"), ("user", "u")]), ["pro"]);
    assert_eq!(in_force(&set, &[("user", "u")]), ["free"]);
}

#[test]
fn a_replaced_policy_still_sets_aside_what_it_replaces() {
    // A named customer on the pro plan: `acme` replaces `pro`, which
    // replaces `free`; neither `pro` nor `free` is in force.
    let set = set(vec![
        spec("free", &[], &[]),
        spec("pro", &[("plan", "pro")], &["free"]),
        spec("acme", &[("tenant", "acme")], &["pro"]),
        spec("burst", &[("tenant", "acme")], &[]),
    ]);
    let a = [("plan", "pro"), ("tenant", "acme"), ("user", "u")];
    assert_eq!(in_force(&set, &a), ["acme", "burst"]);
    assert_eq!(replaced_by(&set, "acme", &a), ["free", "pro"]);
}

#[test]
fn a_shadow_tier_replaces_nothing() {
    let mut trial = spec("pro", &[("plan", "pro")], &["free"]);
    trial.mode = Mode::Shadow;
    let set = set(vec![spec("free", &[], &[]), trial]);
    let pro = [("plan", "pro"), ("user", "u")];
    assert_eq!(in_force(&set, &pro), ["free", "pro"]);
    assert!(replaced_by(&set, "pro", &pro).is_empty());
}

#[test]
fn many_tenant_tiers_each_replace_only_for_their_tenant() {
    let mut specs = vec![spec("base", &[("endpoint", "ai")], &[])];
    for n in 0..1_000 {
        let tenant = format!("t{n}");
        specs.push(spec(
            &format!("tier-{n}"),
            &[("tenant", &tenant)],
            &["base"],
        ));
    }
    let set = set(specs);
    let a = [("endpoint", "ai"), ("tenant", "t7"), ("user", "u")];
    assert_eq!(in_force(&set, &a), ["tier-7"]);
    let a = [("endpoint", "ai"), ("tenant", "none"), ("user", "u")];
    assert_eq!(in_force(&set, &a), ["base"]);
}

#[test]
fn unknown_names_cycles_and_mixed_kinds_are_refused() {
    let found = errors(vec![
        spec("a", &[], &["b", "nope"]),
        spec("b", &[], &["c"]),
        spec("c", &[], &["a"]),
    ]);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(matches!(
        &found[0],
        PolicySetError::Unknown { policy: 0, index: 1, target } if target == "nope"
    ));
    let PolicySetError::Cycle {
        policy,
        index,
        path,
    } = &found[1]
    else {
        panic!("{found:?}")
    };
    assert_eq!((*policy, *index), (2, 0));
    assert_eq!(path, &["a", "b", "c", "a"]);
    assert!(found[1]
        .to_string()
        .contains("a replaces b replaces c replaces a"));
    let mut lease = spec("lease", &[], &[]);
    lease.algorithm = crate::policy::AlgorithmKind::Concurrency;
    lease.window_us = None;
    let found = errors(vec![spec("rate", &[], &["lease"]), lease]);
    assert!(matches!(
        &found[..],
        [PolicySetError::Kinds {
            policy: 0,
            index: 0,
            ..
        }]
    ));
    // Two short cycles, each reported once.
    let found = errors(vec![
        spec("x", &[], &["y"]),
        spec("y", &[], &["x"]),
        spec("z", &[], &["w"]),
        spec("w", &[], &["z"]),
    ]);
    assert_eq!(found.len(), 2, "{found:?}");
}

#[test]
fn a_policy_cannot_replace_itself_or_name_a_policy_twice() {
    let e = Policy::new(spec("a", &[], &["b", "a", "b"])).unwrap_err();
    let got: Vec<_> = e.iter().map(|e| (e.field, e.index)).collect();
    assert_eq!(got, [("replaces", Some(1)), ("replaces", Some(2))]);
    assert!(e[0].message.contains("cannot replace itself"));
}

#[test]
fn a_long_chain_is_resolved_without_recursion() {
    let n = 3_000;
    let specs = (0..n)
        .map(|i| {
            let below = format!("p{}", i + 1);
            let replaces: &[&str] = if i + 1 < n { &[&below] } else { &[] };
            spec(&format!("p{i}"), &[("level", &i.to_string())], replaces)
        })
        .collect();
    let set = set(specs);
    assert_eq!(set.replacements.of(n - 2).len(), 1);
    assert_eq!(set.replacements.of(0).len(), n - 1);
}
