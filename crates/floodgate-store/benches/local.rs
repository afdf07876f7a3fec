//! Criterion benches: one decision of each algorithm (pure transition,
//! charging one hit), each algorithm through the local store, and the local
//! store with and without contention.
//!
//! Run: `cargo bench -p floodgate-store --bench local`

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use floodgate_core::testing::policy;
use floodgate_core::{AlgorithmKind, Policy, State, SystemClock};
use floodgate_store::{LocalConfig, LocalStore, Refund, Source};

/// A policy of `kind` named `bench`: 1 000 000 per minute.
fn bench_policy(kind: AlgorithmKind) -> Policy {
    policy(kind, 1_000_000, 60_000_000).name("bench").build()
}

fn algorithms(c: &mut Criterion) {
    let mut group = c.benchmark_group("decision");
    for (name, kind) in AlgorithmKind::ALL {
        if kind == AlgorithmKind::SlidingLog || kind == AlgorithmKind::Concurrency {
            continue; // states grow per hit; measured through the store below
        }
        // One hit charged per decision, 1 ms apart: 60 000 per 60 s window,
        // far under the limit, so every decision is an allowed charge.
        let p = bench_policy(kind);
        let mut state = State::default();
        let mut now = 1_700_000_000_000_000u64;
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                now += 1_000;
                std::hint::black_box(p.algorithm().check(&mut state, now, 1, 0))
            })
        });
    }
    group.finish();
}

fn store(c: &mut Criterion) {
    let local = Arc::new(LocalStore::new(
        LocalConfig::default(),
        Arc::new(SystemClock::new()),
        Source::Local,
    ));
    let p = Arc::new(bench_policy(AlgorithmKind::SlidingWindow));
    let keys: Vec<String> = (0..10_000).map(|i| format!("bench:user{i}")).collect();
    let mut group = c.benchmark_group("local_store");
    let mut i = 0usize;
    group.bench_function("check_one/uniform_10k", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            std::hint::black_box(local.check_one(&p, &keys[i], 1))
        })
    });
    // Every algorithm through the store (hash, lock, decide, charge).
    // sliding_log keeps one entry per hit: a 1 s window bounds each log to
    // about a thousand entries here; concurrency releases each lease again.
    for (name, kind) in AlgorithmKind::ALL {
        let policy = match kind {
            AlgorithmKind::SlidingLog => policy(kind, 10_000, 1_000_000).name("bench").build(),
            _ => bench_policy(kind),
        };
        group.bench_function(BenchmarkId::new("check_one_each", name), |b| {
            b.iter(|| {
                i = (i + 1) % keys.len();
                let outcome = local.check_one(&policy, &keys[i], 1);
                if kind == AlgorithmKind::Concurrency {
                    if let Some(receipt) = outcome.receipt {
                        local.refund_one(&Refund {
                            policy: &policy,
                            key: &keys[i],
                            hits: 1,
                            receipt,
                            source: Some(Source::Local),
                        });
                    }
                }
                std::hint::black_box(outcome)
            })
        });
    }
    // The same, while another thread hammers the store (2 cores here).
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let noise = {
        let (local, p, stop) = (local.clone(), p.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut j = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                j += 1;
                local.check_one(&p, &format!("bench:other{}", j % 10_000), 1);
            }
        })
    };
    group.bench_function("check_one/uniform_10k_contended", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            std::hint::black_box(local.check_one(&p, &keys[i], 1))
        })
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    noise.join().expect("noise thread");
    group.finish();
}

criterion_group!(benches, algorithms, store);
criterion_main!(benches);
