//! Lockouts (`block_for`) on Redis: the same answers as the local store on
//! the same sequences, a block set through one sidecar refusing on another,
//! the record's key, and what a lockout check costs Redis.

use std::sync::Arc;

use floodgate_core::{testing, AlgorithmKind, Attributes, Clock, Policy};
use floodgate_redis::block_key;
use floodgate_store::{DenyCache, Store, StoreOp};
use redis::Commands;

use crate::conformance;
use crate::connect;
use crate::settle::commandstats;
use floodgate_e2e::RedisServer;

const MS: u64 = 1_000;
const S: u64 = 1_000_000;

/// A lockout policy keyed by `user`.
fn blocking(
    name: &str,
    kind: AlgorithmKind,
    limit: u64,
    window_us: u64,
    block: (u64, Option<u64>),
) -> Policy {
    testing::policy(kind, limit, window_us)
        .name(name)
        .with(|spec| {
            spec.block_for_us = Some(block.0);
            spec.block_escalation = block.1.is_some();
            spec.block_max_us = block.1;
        })
        .build()
}

fn user(name: &str) -> Attributes {
    [("user".to_string(), name.to_string())].into()
}

/// One outcome of each store for the same op.
async fn both(
    local: &dyn Store,
    redis: &dyn Store,
    policy: &Policy,
    key: &str,
    hits: u64,
) -> (floodgate_core::Outcome, floodgate_core::Outcome) {
    let ops = [StoreOp::new(policy, key, hits)];
    let l = local.check(&ops).await.unwrap()[0].outcome;
    let r = redis.check(&ops).await.unwrap()[0].outcome;
    (l, r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockouts_conform_with_the_local_store() {
    use AlgorithmKind::*;
    let server = RedisServer::start();
    let clock = conformance::clock();
    let redis = connect(server.url()).await.with_test_clock(clock.clone());
    let local = conformance::local_store(&clock);
    let policies = [
        blocking("b-fw", FixedWindow, 3, S, (5 * S, None)),
        blocking("b-sw", SlidingWindow, 4, 2 * S, (3 * S + 7 * MS, None)),
        blocking("b-log", SlidingLog, 2, S, (1_500 * MS, Some(7 * S))),
        blocking("b-tb", TokenBucket, 3, S, (2 * S, Some(20 * S))),
        blocking("b-fw-esc", FixedWindow, 2, 700 * MS, (S, Some(5 * S))),
    ];
    let mut seed: u64 = 0x5DEE_CE66_D1CE_5EED;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (mut blocked, mut compared) = (0, 0);
    for policy in &policies {
        let key = policy.counter_key(&user("conform"));
        let block = policy.block().for_us;
        let mut log = Vec::new();
        for step in 0..150 {
            if next() % 3 == 0 {
                let by = [
                    1,
                    999,
                    MS,
                    policy.window_us() / 2,
                    block / 3,
                    block,
                    block + 1,
                ][(next() % 7) as usize];
                clock.advance(by);
                log.push(format!("advance {by}"));
                continue;
            }
            let hits = [0, 1, 1, 1, 2, 4][(next() % 6) as usize];
            log.push(format!("check {hits}"));
            let (l, r) = both(&local, &redis, policy, &key, hits).await;
            assert_eq!(
                l,
                r,
                "{} step {step} diverged at {}: {log:?}",
                policy.name(),
                clock.now_us()
            );
            compared += 1;
            if !l.allowed && l.retry_after_us > policy.window_us() {
                blocked += 1;
            }
        }
    }
    assert!(
        compared > 400 && blocked > 50,
        "{compared} compared, {blocked} blocked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_set_through_one_sidecar_refuses_on_another_until_it_ends() {
    let server = RedisServer::start();
    let clock = conformance::clock();
    let a = connect(server.url()).await.with_test_clock(clock.clone());
    let b = connect(server.url()).await.with_test_clock(clock.clone());
    let policy = blocking("login", AlgorithmKind::FixedWindow, 2, S, (60 * S, None));
    let key = policy.counter_key(&user("victim"));
    let op = [StoreOp::new(&policy, &key, 1)];
    for _ in 0..2 {
        assert!(a.check(&op).await.unwrap()[0].outcome.allowed);
    }
    let denied = a.check(&op).await.unwrap()[0].outcome;
    assert!(!denied.allowed);
    assert_eq!(denied.retry_after_us, 60 * S);
    // The record sits under the counter's hash tag, with the block's TTL.
    let mut inspector = server.inspector();
    let record = block_key("fg", &key);
    assert_eq!(record, "fg:{login:victim}:block");
    let ttl: i64 = inspector.pttl(&record).unwrap();
    assert!(ttl > 59_000, "pttl {ttl}");
    clock.advance(20 * S);
    let other = b.check(&op).await.unwrap()[0].outcome;
    assert!(!other.allowed, "the other sidecar refuses too");
    assert_eq!((other.remaining, other.retry_after_us), (0, 40 * S));
    clock.advance(40 * S);
    assert!(b.check(&op).await.unwrap()[0].outcome.allowed, "lifted");
    // Deleting the record (an admin reset) lifts a block at once.
    let _ = b.check(&op).await.unwrap();
    assert!(!b.check(&op).await.unwrap()[0].outcome.allowed);
    let _: i64 = inspector.del(&record).unwrap();
    clock.advance(S);
    assert!(a.check(&op).await.unwrap()[0].outcome.allowed);
}

/// For the record (run with `--nocapture`): what a check on a blocked key
/// costs Redis (one `EVALSHA`, asserted; the commands inside and the server
/// time from `INFO commandstats`), next to an allowed check of the same
/// policy shape without a lockout; and that the deny cache answers a
/// blocked key without any call (asserted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_lockout_check_costs_redis() {
    const N: usize = 2_000;
    let server = RedisServer::start();
    let store = Arc::new(connect(server.url()).await);
    let mut inspector = server.inspector();
    let plain = conformance::policy(
        "plain",
        AlgorithmKind::FixedWindow,
        1_000_000_000,
        60 * S,
        None,
    );
    let login = blocking(
        "login",
        AlgorithmKind::FixedWindow,
        1,
        60 * S,
        (600 * S, None),
    );
    let guarded = blocking(
        "guarded",
        AlgorithmKind::FixedWindow,
        1_000_000_000,
        60 * S,
        (600 * S, None),
    );
    let mut rows = Vec::new();
    for (label, policy, first) in [
        ("allowed, no lockout", &plain, 0),
        ("allowed, with a lockout", &guarded, 0),
        ("blocked key", &login, 2),
    ] {
        let key = policy.counter_key(&user("bench"));
        let op = [StoreOp::new(policy, &key, 1)];
        for _ in 0..first {
            let _ = store.check(&op).await.unwrap();
        }
        let () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query(&mut inspector)
            .unwrap();
        let started = std::time::Instant::now();
        for _ in 0..N {
            let o = store.check(&op).await.unwrap()[0].outcome;
            assert_eq!(o.allowed, first == 0);
        }
        let client_us = started.elapsed().as_micros() as f64 / N as f64;
        let stats = commandstats(&mut inspector);
        let calls = |name: &str| stats.iter().find(|s| s.0 == name).map_or(0, |s| s.1);
        assert_eq!(
            calls("evalsha"),
            N as u64,
            "one script call per check: {stats:?}"
        );
        let server_us = stats.iter().find(|s| s.0 == "evalsha").map_or(0.0, |s| s.2);
        rows.push(format!(
            "{label}: Redis {server_us:.1} µs per EVALSHA, client {client_us:.0} µs per check; {stats:?}"
        ));
    }
    let cache = DenyCache::new(
        store.clone(),
        Arc::new(floodgate_core::SystemClock::new()) as Arc<dyn Clock>,
        1_000,
    );
    let key = login.counter_key(&user("cached"));
    let op = [StoreOp::new(&login, &key, 1)];
    let _ = cache.check(&op).await.unwrap();
    assert!(!cache.check(&op).await.unwrap()[0].outcome.allowed);
    let () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query(&mut inspector)
        .unwrap();
    let started = std::time::Instant::now();
    for _ in 0..N {
        assert!(!cache.check(&op).await.unwrap()[0].outcome.allowed);
    }
    let cached_us = started.elapsed().as_micros() as f64 / N as f64;
    let stats = commandstats(&mut inspector);
    assert!(
        stats.iter().all(|s| s.0 != "evalsha"),
        "a cached block calls nothing: {stats:?}"
    );
    eprintln!(
        "lockout check cost:\n  {}\n  blocked key through the deny cache: 0 Redis calls, {cached_us:.1} µs per check",
        rows.join("\n  ")
    );
}

/// On a Cluster, a lockout record and a calendar window sit in their
/// counter's slot: keys of users spread over every node work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockouts_and_calendar_windows_work_on_a_cluster() {
    let cluster = floodgate_e2e::Cluster::start();
    let clock = conformance::clock();
    let a = crate::connect_cluster(cluster.urls())
        .await
        .with_test_clock(clock.clone());
    let b = crate::connect_cluster(cluster.urls())
        .await
        .with_test_clock(clock.clone());
    let login = blocking(
        "login",
        AlgorithmKind::SlidingWindow,
        1,
        10 * S,
        (60 * S, None),
    );
    let daily = crate::calendar::calendar("daily", 5, "day", "Europe/Paris");
    let (end, now) = (
        daily.calendar().unwrap().period_at(clock.now_us()).1,
        clock.now_us(),
    );
    for i in 0..12 {
        let name = format!("cluster-user-{i}");
        let (lk, dk) = (
            login.counter_key(&user(&name)),
            daily.counter_key(&user(&name)),
        );
        let ops = [StoreOp::new(&login, &lk, 1), StoreOp::new(&daily, &dk, 1)];
        let first = a.check(&ops).await.unwrap();
        assert!(first.iter().all(|o| o.outcome.allowed), "{name}: {first:?}");
        assert_eq!(first[1].outcome.reset_after_us, end - now);
        let denied = a.check(&ops).await.unwrap();
        assert!(!denied[0].outcome.allowed);
        assert_eq!(denied[0].outcome.retry_after_us, 60 * S);
        let other = b.check(&ops[..1]).await.unwrap()[0].outcome;
        assert_eq!((other.allowed, other.retry_after_us), (false, 60 * S));
    }
}
