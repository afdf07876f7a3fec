//! Calendar windows on Redis: the same answers as the local store across
//! clock changes and month ends (the sidecar sends the period starts, the
//! script picks the one holding the script's now), refunds included.

use std::sync::Arc;

use floodgate_core::{testing, AlgorithmKind, Attributes, Clock, ManualClock, Policy};
use floodgate_store::{Refund, Store, StoreOp};
use redis::Commands;

use crate::conformance;
use crate::connect;
use floodgate_e2e::RedisServer;

const H: u64 = 3_600_000_000;

/// A `fixed_window` policy keyed by `user`, allowing `limit` per calendar
/// `period` in time zone `zone`.
pub(crate) fn calendar(name: &str, limit: u64, period: &str, zone: &str) -> Policy {
    testing::policy(AlgorithmKind::FixedWindow, limit, 0)
        .name(name)
        .with(|spec| {
            spec.window_us = None;
            spec.calendar = Some(period.into());
            spec.timezone = Some(zone.into());
        })
        .build()
}

fn user(name: &str) -> Attributes {
    [("user".to_string(), name.to_string())].into()
}

/// Starting points: 2025-03-29 20:00 UTC (the eve of Paris's spring change),
/// 2025-11-01 20:00 UTC (New York's autumn change), 2024-02-27 UTC (a leap
/// February's end), 2025-01-30 UTC (January 31).
const STARTS: [u64; 4] = [
    1_743_278_400_000_000,
    1_762_027_200_000_000,
    1_709_000_000_000_000,
    1_738_195_200_000_000,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calendar_windows_conform_with_the_local_store() {
    let server = RedisServer::start();
    let policies = [
        calendar("paris-day", 5, "day", "Europe/Paris"),
        calendar("ny-day", 3, "day", "America/New_York"),
        calendar("paris-week", 8, "week", "Europe/Paris"),
        calendar("utc-month", 6, "month", "UTC"),
    ];
    let mut seed: u64 = 0x0123_4567_89AB_CDEF;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut compared = 0;
    for (run, start) in STARTS.iter().enumerate() {
        let clock = Arc::new(ManualClock::new(*start));
        let redis = connect(server.url()).await.with_test_clock(clock.clone());
        let local = conformance::local_store(&clock);
        for policy in &policies {
            let key = policy.counter_key(&user(&format!("run{run}")));
            let mut receipts = Vec::new();
            let mut log = Vec::new();
            for step in 0..80 {
                let roll = next() % 10;
                if roll < 3 {
                    let by = [1, H / 2, 3 * H, 7 * H, 24 * H][(next() % 5) as usize];
                    clock.advance(by);
                    log.push(format!("advance {by}"));
                    continue;
                }
                if roll == 3 && !receipts.is_empty() {
                    let (hits, l, r) = receipts.swap_remove(0);
                    let refund = |receipt| Refund {
                        policy,
                        key: &key,
                        hits,
                        receipt,
                        source: None,
                    };
                    local.refund(&[refund(l)]).await.unwrap();
                    redis.refund(&[refund(r)]).await.unwrap();
                    log.push(format!("refund {hits}"));
                    continue;
                }
                let hits = [0, 1, 1, 2][(next() % 4) as usize];
                let ops = [StoreOp::new(policy, &key, hits)];
                let l = local.check(&ops).await.unwrap()[0].outcome;
                let r = redis.check(&ops).await.unwrap()[0].outcome;
                log.push(format!("check {hits}"));
                assert_eq!(
                    l,
                    r,
                    "{} run {run} step {step} at {}: {log:?}",
                    policy.name(),
                    clock.now_us()
                );
                let (start, end) = policy.calendar().unwrap().period_at(clock.now_us());
                assert_eq!(l.reset_after_us, end - clock.now_us());
                assert!(end - start >= 23 * H);
                if let (Some(lr), Some(rr)) = (l.receipt, r.receipt) {
                    receipts.push((hits, lr, rr));
                }
                compared += 1;
            }
        }
    }
    assert!(compared > 500, "{compared} compared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daily_counter_lives_until_local_midnight_under_its_own_key() {
    let server = RedisServer::start();
    // 2025-03-30 12:00 Paris (10:00 UTC), the short day: 12 h to midnight.
    let clock = Arc::new(ManualClock::new(1_743_328_800_000_000));
    let redis = connect(server.url())
        .await
        .with_test_clock(clock.clone() as Arc<dyn Clock>);
    let policy = calendar("messages", 2, "day", "Europe/Paris");
    let key = policy.counter_key(&user("u1"));
    let ops = [StoreOp::new(&policy, &key, 1)];
    for _ in 0..2 {
        assert!(redis.check(&ops).await.unwrap()[0].outcome.allowed);
    }
    let denied = redis.check(&ops).await.unwrap()[0].outcome;
    assert!(!denied.allowed);
    assert_eq!(denied.retry_after_us, 12 * H);
    let redis_key = redis.redis_key(&policy, &key);
    assert_eq!(redis_key, "fg:{messages:u1}:fw:day:Europe/Paris");
    let mut inspector = server.inspector();
    let pttl: i64 = inspector.pttl(&redis_key).unwrap();
    let expected = (12 * H / 1_000) as i64;
    // (Under a test clock the scripts add a fixed slack of 600 s to TTLs.)
    assert!(
        (expected..expected + 605_000).contains(&pttl),
        "pttl {pttl}"
    );
    clock.advance(12 * H);
    assert!(
        redis.check(&ops).await.unwrap()[0].outcome.allowed,
        "a new day"
    );
}
