//! Criterion bench: one check through the `Limiter` over the local store,
//! with 10 and with 10 000 policies of one tenant each
//! (`match = { tenant = "tN" }`, keyed by `user`). The two figures should be
//! close: matching goes through the policy index, not a scan.
//!
//! Run: `cargo bench -p floodgate-store --bench policies`

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use floodgate_core::{Attributes, Policy, PolicySet, PolicySpec, SystemClock};
use floodgate_store::{Check, Limiter, LocalConfig, LocalStore, Source};

fn tenant_policies(tenants: usize) -> PolicySet {
    let policies = (0..tenants)
        .map(|n| {
            Policy::new(PolicySpec {
                name: format!("tenant-{n}"),
                matches: vec![("tenant".into(), vec![format!("t{n}")])],
                key: vec!["user".into()],
                limit: 1_000_000_000,
                window_us: Some(60_000_000),
                ..PolicySpec::default()
            })
            .expect("valid policy")
        })
        .collect();
    PolicySet::new(policies).expect("unique names")
}

fn limiter_check(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("limiter_check");
    for tenants in [10usize, 10_000] {
        let store = LocalStore::new(
            LocalConfig::default(),
            Arc::new(SystemClock::new()),
            Source::Local,
        );
        let limiter = Limiter::new(tenant_policies(tenants), Arc::new(store));
        // 1 000 users spread over the tenants (the same keys either way).
        let checks: Vec<Attributes> = (0..1_000)
            .map(|i| {
                [
                    ("tenant", format!("t{}", i % 10 * tenants / 10)),
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
                let verdict = rt
                    .block_on(limiter.check(Check {
                        attributes: &checks[i],
                        hits: 1,
                        domain: None,
                        reserve: false,
                    }))
                    .expect("check");
                assert_eq!(verdict.statuses.len(), 1);
                std::hint::black_box(verdict)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, limiter_check);
criterion_main!(benches);
