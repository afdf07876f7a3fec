//! Criterion bench: picking the policies that apply to a check, with 10 and
//! with 10 000 policies of one tenant each (`match = { tenant = "tN" }`),
//! plus one policy every check matches.
//!
//! Run: `cargo bench -p floodgate-core --bench applicable`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use floodgate_core::{Attributes, Policy, PolicySet, PolicySpec};

/// `tenants` policies `tenant-N`, each matching `tenant = "tN"`, then one
/// `global` policy keyed by `user` that every check matches.
fn tenant_policies(tenants: usize) -> PolicySet {
    let mut policies: Vec<Policy> = (0..tenants)
        .map(|n| {
            Policy::new(PolicySpec {
                name: format!("tenant-{n}"),
                matches: vec![("tenant".into(), vec![format!("t{n}")])],
                key: vec!["user".into()],
                limit: 1_000,
                window_us: Some(60_000_000),
                ..PolicySpec::default()
            })
            .expect("valid policy")
        })
        .collect();
    policies.push(
        Policy::new(PolicySpec {
            name: "global".into(),
            key: vec!["user".into()],
            limit: 1_000_000,
            window_us: Some(60_000_000),
            ..PolicySpec::default()
        })
        .expect("valid policy"),
    );
    PolicySet::new(policies).expect("unique names")
}

fn applicable(c: &mut Criterion) {
    let mut group = c.benchmark_group("applicable");
    for tenants in [10usize, 10_000] {
        let set = tenant_policies(tenants);
        // Checks spread over the tenants, each with a user and an endpoint.
        let checks: Vec<Attributes> = (0..10)
            .map(|i| {
                [
                    ("tenant", format!("t{}", (i * tenants / 10 + 3) % tenants)),
                    ("user", format!("u{i}")),
                    ("endpoint", "ai".to_string()),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect()
            })
            .collect();
        let mut i = 0usize;
        group.bench_function(BenchmarkId::new("tenant_policies", tenants), |b| {
            b.iter(|| {
                i = (i + 1) % checks.len();
                let n = set.applicable(&checks[i], None).count();
                assert_eq!(n, 2);
                std::hint::black_box(n)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, applicable);
criterion_main!(benches);
