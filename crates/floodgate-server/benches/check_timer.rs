//! Criterion bench: what timing a check costs with tracing off (the
//! default) against recording its duration alone. The two should match:
//! off, a span costs a branch.
//!
//! Run: `cargo bench -p floodgate-server --bench check_timer`

use criterion::{criterion_group, criterion_main, Criterion};
use floodgate_server::telemetry::latency::{transport_index, CHECK_DURATION};
use floodgate_server::traces::CheckTimer;
use floodgate_store::Verdict;

fn timer(c: &mut Criterion) {
    let verdict = Verdict::default();
    let grpc = transport_index("grpc").unwrap_or_default();
    let mut group = c.benchmark_group("check_timer");
    group.bench_function("histogram_only", |b| {
        b.iter(|| {
            let started = std::time::Instant::now();
            std::hint::black_box(&verdict);
            CHECK_DURATION.record(grpc, started.elapsed());
        })
    });
    group.bench_function("tracing_off", |b| {
        b.iter(|| {
            let mut timer = CheckTimer::start(
                None,
                "grpc",
                Some(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            );
            timer.deciding();
            timer.decided(std::hint::black_box(&verdict));
            timer.finish();
        })
    });
    group.finish();
}

criterion_group!(benches, timer);
criterion_main!(benches);
