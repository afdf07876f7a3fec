//! A reload that changes a policy's window, limit or burst, against both
//! stores: the same policy name (so the same counters) with the old and then
//! the new parameters. Both stores must decide alike, no counter may stay
//! denied past the new parameters' horizon, and no counter may be kept (a
//! Redis TTL, a local expiry) beyond it.

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
        let before = policy(name, kind, l0, w0, b0);
        let after = policy(name, kind, l1, w1, b1);
        let attributes: Attributes = [("user".to_string(), "u".to_string())].into();
        let key = before.counter_key(&attributes);
        assert_eq!(key, after.counter_key(&attributes));
        let stores: [&dyn Store; 2] = [&local, &redis];

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
            assert_eq!(
                l[0].outcome,
                r[0].outcome,
                "{name} diverged {} µs after the reload",
                clock.now_us() - start
            );
            assert!(
                l[0].outcome.reset_after_us <= horizon(&after),
                "{name}: reset_after {} µs beyond the new window",
                l[0].outcome.reset_after_us
            );
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
