//! What the Redis client path alone allows: `--in-flight` tasks each
//! deciding one `sliding_window` check after another through a
//! [`RedisStore`] (fred, the check script, the reply), with no gRPC in
//! front, for `--seconds`. Prints one JSON object: checks/s and this
//! process's CPU per check. `scripts/bench` runs it beside floodgate's Redis
//! scenario so the client's own cost can be told from the transport's.
//!
//! Run: `cargo run --release -p floodgate-redis --example client_ceiling --
//! redis://127.0.0.1:PORT [--in-flight 64] [--seconds 5]` (loopback only).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use floodgate_core::{Policy, PolicySpec};
use floodgate_redis::{Config, RedisStore};
use floodgate_store::{Store, StoreOp};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// CPU seconds this process has used (user + system), from /proc.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime is
    // the 12th, stime the 13th, in clock ticks (100 per second here).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn usage(message: &str) -> ! {
    eprintln!("client_ceiling: {message}\nusage: client_ceiling redis://127.0.0.1:PORT [--in-flight N] [--seconds S]");
    std::process::exit(2);
}

fn main() {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| usage("the Redis URL is missing"));
    if !url.starts_with("redis://127.0.0.1:") && !url.starts_with("redis://localhost:") {
        usage("only a loopback Redis (redis://127.0.0.1:PORT)");
    }
    let (mut in_flight, mut seconds) = (64usize, 5u64);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        let number: u64 = value
            .parse()
            .unwrap_or_else(|_| usage(&format!("{flag} {value}: not a number")));
        match flag.as_str() {
            "--in-flight" if (1..=1024).contains(&number) => in_flight = number as usize,
            "--seconds" if (1..=600).contains(&number) => seconds = number,
            _ => usage(&format!("{flag} {value}: unknown flag or out of range")),
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(url, in_flight, Duration::from_secs(seconds)));
}

async fn run(url: String, in_flight: usize, length: Duration) {
    let store = RedisStore::connect(&Config {
        url: Some(url),
        timeout: Duration::from_secs(2),
        ..Config::default()
    })
    .await
    .unwrap_or_else(|e| {
        eprintln!("client_ceiling: {e}");
        std::process::exit(1)
    });
    let store = Arc::new(store);
    let policy = Arc::new(
        Policy::new(PolicySpec {
            name: "bench".into(),
            key: vec!["user".into()],
            limit: 100_000_000,
            window_us: Some(60_000_000),
            ..PolicySpec::default()
        })
        .expect("valid policy"),
    );
    let (done, errors, stop) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let (started, cpu_before) = (Instant::now(), cpu_seconds());
    let tasks: Vec<_> = (0..in_flight)
        .map(|task| {
            let (store, policy) = (store.clone(), policy.clone());
            let (done, errors, stop) = (done.clone(), errors.clone(), stop.clone());
            tokio::spawn(async move {
                let mut user = task as u64 * 7_919;
                while !stop.load(Ordering::Relaxed) {
                    user = (user * 6_364_136_223_846_793_005 + 1) % 100_000;
                    let key = format!("bench:bench-{user}");
                    match store.check(&[StoreOp::new(&policy, &key, 1)]).await {
                        Ok(_) => done.fetch_add(1, Ordering::Relaxed),
                        Err(_) => errors.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    tokio::time::sleep(length).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    let (elapsed, cpu) = (started.elapsed().as_secs_f64(), cpu_seconds() - cpu_before);
    let checks = done.load(Ordering::Relaxed);
    println!(
        "{{\"checks\": {checks}, \"errors\": {}, \"throughput_rps\": {:.1}, \"cpu_us_per_check\": {:.2}}}",
        errors.load(Ordering::Relaxed),
        checks as f64 / elapsed,
        cpu * 1e6 / checks.max(1) as f64
    );
}
