//! A fixed number of checks through the `Limiter` over the local store with
//! one `sliding_window` policy (1 000 users, limit never reached, a fixed
//! clock so the count is the same on every run): the
//! program `scripts/bench` runs under `valgrind --tool=callgrind` to count
//! the instructions of one in-process check.
//!
//! Run: `cargo run --release -p floodgate-store --example instructions -- 10000`
//! Two runs with different counts give the instructions per check as the
//! difference of their totals over the difference of their counts, so the
//! start-up cost cancels out.

use std::sync::Arc;

use floodgate_core::{Attributes, ManualClock, Policy, PolicySet, PolicySpec};
use floodgate_store::{Check, Limiter, LocalConfig, LocalStore, PolicySnapshot, Source};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let count: usize = match std::env::args().nth(1).map(|n| n.parse()) {
        None => 10_000,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            eprintln!("usage: instructions [CHECKS]");
            std::process::exit(2);
        }
    };
    let policy = Policy::new(PolicySpec {
        name: "ai-per-user".into(),
        matches: vec![("endpoint".into(), vec!["ai".into()])],
        key: vec!["user".into()],
        limit: 1_000_000_000,
        window_us: Some(60_000_000),
        ..PolicySpec::default()
    })
    .expect("valid policy");
    // A fixed clock everywhere: the system clock's calibration takes a
    // time-bound number of instructions, which would make the count move
    // between runs.
    let clock = Arc::new(ManualClock::new(1_700_000_000_000_000));
    let store = LocalStore::new(LocalConfig::default(), clock.clone(), Source::Local);
    let policies = PolicySnapshot::new(PolicySet::new(vec![policy]).expect("one policy"), false);
    let limiter = Limiter::with_source_and_clock(
        Arc::new(arc_swap::ArcSwap::from_pointee(policies)),
        Arc::new(store),
        clock,
    );
    let users: Vec<Attributes> = (0..1_000)
        .map(|i| {
            [("user", format!("u{i}")), ("endpoint", "ai".to_string())]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect()
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut allowed = 0usize;
    for i in 0..count {
        let verdict = runtime
            .block_on(limiter.check(Check {
                attributes: &users[i % users.len()],
                hits: 1,
                domain: None,
                reserve: false,
            }))
            .expect("check");
        allowed += usize::from(verdict.allowed);
    }
    assert_eq!(allowed, count, "every check is under the limit");
    println!("{count} checks");
}
