//! A reload that changes a policy's window, limit or burst, against both
//! stores: the same policy name (so the same counters) with the old and then
//! the new parameters. No counter may stay denied past the new parameters'
//! horizon, and no counter may be kept (a Redis TTL, a local expiry) beyond
//! it. Where the Redis key stays the same (only the limit changed) both
//! stores must decide alike; where the change is part of the Redis key (the
//! window, the bucket's burst or rate) Redis counts afresh, exactly as a
//! local store that never saw the old parameters.
//!
//! Then a reload rolling across sidecars that share Redis: two
//! configurations of one policy checked alternately on one counter must
//! neither reset each other (admitting without bound) nor lock.

use floodgate_core::{AlgorithmKind, Attributes, Clock, Policy};
use floodgate_store::{Store, StoreOp};
use redis::Commands;

use crate::conformance::{self, policy};
use crate::connect;
use floodgate_e2e::RedisServer;

const MS: u64 = 1_000;
const S: u64 = 1_000_000;

/// The test clock's slack on Redis TTLs (prelude.lua `TEST_SLACK_MS`).
const TEST_SLACK_MS: i64 = 600_000;

/// (name, algorithm, before (limit, window, burst), after (limit, window, burst))
type Change = (
    &'static str,
    AlgorithmKind,
    (u64, u64, Option<u64>),
    (u64, u64, Option<u64>),
);

fn changes() -> Vec<Change> {
    use AlgorithmKind::*;
    vec![
        ("fw-grow", FixedWindow, (3, S, None), (3, 10 * S, None)),
        ("fw-shrink", FixedWindow, (3, 10 * S, None), (3, S, None)),
        (
            "fw-limit",
            FixedWindow,
            (9, 10 * S, None),
            (2, 10 * S, None),
        ),
        ("sw-grow", SlidingWindow, (3, S, None), (3, 10 * S, None)),
        ("sw-shrink", SlidingWindow, (3, 10 * S, None), (3, S, None)),
        (
            "sw-limit",
            SlidingWindow,
            (9, 10 * S, None),
            (2, 10 * S, None),
        ),
        (
            "tb-burst",
            TokenBucket,
            (50, 50 * S, Some(50)),
            (50, 50 * S, Some(2)),
        ),
        (
            "tb-slower",
            TokenBucket,
            (10, S, Some(10)),
            (10, 30 * S, Some(10)),
        ),
        ("log-shrink", SlidingLog, (3, 10 * S, None), (3, S, None)),
        (
            "log-limit",
            SlidingLog,
            (9, 10 * S, None),
            (2, 10 * S, None),
        ),
    ]
}

/// How long the new parameters may keep a counter at most (µs).
fn horizon(after: &Policy) -> u64 {
    if after.kind() == AlgorithmKind::TokenBucket {
        // A full bucket's debt.
        after.burst() * after.window_us().div_ceil(after.limit())
    } else {
        2 * after.window_us()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_never_leaves_a_counter_stuck_in_either_store() {
    let server = RedisServer::start();
    let mut inspector = server.inspector();
    for (name, kind, (l0, w0, b0), (l1, w1, b1)) in changes() {
        let clock = conformance::clock();
        let redis = connect(server.url()).await.with_test_clock(clock.clone());
        let local = conformance::local_store(&clock);
        // What Redis must match when the change starts a new Redis key.
        let fresh = conformance::local_store(&clock);
        let before = policy(name, kind, l0, w0, b0);
        let after = policy(name, kind, l1, w1, b1);
        let attributes: Attributes = [("user".to_string(), "u".to_string())].into();
        let key = before.counter_key(&attributes);
        assert_eq!(key, after.counter_key(&attributes));
        let stores: [&dyn Store; 2] = [&local, &redis];
        let new_key = redis.redis_key(&before, &key) != redis.redis_key(&after, &key);

        // Spend the old quota until denied, in both stores.
        for _ in 0..=l0.max(b0.unwrap_or(0)) {
            for store in stores {
                store
                    .check(&[StoreOp::new(&before, &key, 1)])
                    .await
                    .unwrap();
            }
            clock.advance(MS);
        }
        // The reload: from now on only `after` is used. Walk past its
        // horizon; both stores must agree at every step.
        let start = clock.now_us();
        let step = (horizon(&after) / 40).max(MS);
        while clock.now_us() <= start + horizon(&after) {
            let ops = [StoreOp::new(&after, &key, 1)];
            let (l, r) = (
                local.check(&ops).await.unwrap(),
                redis.check(&ops).await.unwrap(),
            );
            if new_key {
                let f = fresh.check(&ops).await.unwrap();
                assert_eq!(
                    f[0].outcome,
                    r[0].outcome,
                    "{name}: Redis is not a fresh counter {} µs after the reload",
                    clock.now_us() - start
                );
            } else {
                assert_eq!(
                    l[0].outcome,
                    r[0].outcome,
                    "{name} diverged {} µs after the reload",
                    clock.now_us() - start
                );
            }
            for outcome in [&l[0].outcome, &r[0].outcome] {
                assert!(
                    outcome.reset_after_us <= horizon(&after),
                    "{name}: reset_after {} µs beyond the new window",
                    outcome.reset_after_us
                );
            }
            for stored in inspector.keys::<_, Vec<String>>("*").unwrap() {
                let ttl: i64 = redis::cmd("PTTL")
                    .arg(&stored)
                    .query(&mut inspector)
                    .unwrap();
                // A key may keep the TTL its old parameters gave it until
                // its next write; never more than the longer horizon.
                let longest = horizon(&after).max(horizon(&before));
                let bound = TEST_SLACK_MS + (longest / MS) as i64 + 1;
                assert!(ttl <= bound, "{name}: {stored} has TTL {ttl} ms > {bound}");
            }
            clock.advance(step);
        }
        // A horizon with no checks: the local store lets the counter go, and
        // both stores have room again.
        clock.advance(horizon(&after));
        assert_eq!(
            local.sweep(),
            0,
            "{name}: the local counter outlives its window"
        );
        for store in stores {
            let peek = store.check(&[StoreOp::new(&after, &key, 0)]).await.unwrap();
            assert!(
                peek[0].outcome.allowed,
                "{name}: still denied past the new horizon"
            );
        }
        let _: () = redis::cmd("FLUSHALL").query(&mut inspector).unwrap();
    }
}

/// The most `policy` may admit in `span_us` of steady checks: its limit per
/// window it touches (`sliding_window` weighs the one before too), or a full
/// bucket plus what it refills.
fn most_admitted(policy: &Policy, span_us: u64) -> u64 {
    let windows = span_us.div_ceil(policy.window_us()) + 1;
    match policy.kind() {
        AlgorithmKind::TokenBucket => {
            let interval = policy.window_us().div_ceil(policy.limit());
            policy.burst() + span_us / interval + 1
        }
        AlgorithmKind::SlidingWindow => policy.limit() * (windows + 1),
        _ => policy.limit() * windows,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_configurations_on_one_redis_neither_reset_nor_lock_each_other() {
    use AlgorithmKind::*;
    let server = RedisServer::start();
    // (algorithm, A (limit, window, burst), B (limit, window, burst)): what
    // two sidecars run for one policy while a reload rolls across them.
    let pairs = [
        (FixedWindow, (3, S, None), (3, 10 * S, None)),
        (SlidingWindow, (3, S, None), (3, 10 * S, None)),
        (SlidingLog, (3, S, None), (3, 10 * S, None)),
        (TokenBucket, (1, S, Some(5)), (1, S, Some(2))),
        (TokenBucket, (1, S, Some(3)), (1, 4 * S, Some(3))),
    ];
    for (kind, (la, wa, ba), (lb, wb, bb)) in pairs {
        let clock = conformance::clock();
        let redis = connect(server.url()).await.with_test_clock(clock.clone());
        let a = policy("roll", kind, la, wa, ba);
        let b = policy("roll", kind, lb, wb, bb);
        let attributes: Attributes = [("user".to_string(), "u".to_string())].into();
        let key = a.counter_key(&attributes);
        let (span, step) = (20 * S, 20 * MS);
        let start = clock.now_us();
        let mut admitted = [0u64; 2];
        // The last admission of each, to see that neither is locked.
        let mut last = [0u64; 2];
        while clock.now_us() < start + span {
            for (i, p) in [&a, &b].into_iter().enumerate() {
                let out = redis.check(&[StoreOp::new(p, &key, 1)]).await.unwrap();
                if out[0].outcome.allowed {
                    admitted[i] += 1;
                    last[i] = clock.now_us();
                }
            }
            clock.advance(step);
        }
        let end = clock.now_us();
        for (i, p) in [&a, &b].into_iter().enumerate() {
            let most = most_admitted(p, span);
            assert!(
                admitted[i] <= most,
                "{kind:?} config {i}: {} admitted in {span} µs, at most {most}: the other configuration resets its counter",
                admitted[i]
            );
            // Never locked: each keeps admitting while the other runs (a
            // token bucket refills one hit per interval, a window counter
            // gets its limit back every window).
            let horizon = match kind {
                TokenBucket => 2 * p.window_us().div_ceil(p.limit()),
                _ => 2 * p.window_us(),
            };
            assert!(
                end - last[i] <= horizon,
                "{kind:?} config {i}: nothing admitted for {} µs: locked",
                end - last[i]
            );
        }
    }
}
