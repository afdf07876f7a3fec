//! Reconcile on a real Redis: the fallback's charges are added to the
//! counters of the windows they were made in, for `fixed_window` and
//! `sliding_window`; charges of a window that no longer counts are skipped.

use floodgate_core::{AlgorithmKind, Clock};
use floodgate_e2e::RedisServer;
use floodgate_store::{Reconcile, Store, StoreOp};
use redis::Commands;

use crate::conformance::{self, policy};
use crate::connect;

const WINDOW: u64 = 60_000_000;

fn charge(kind: AlgorithmKind, key: &str, at_us: u64, hits: u64) -> Reconcile {
    Reconcile {
        kind,
        key: key.into(),
        window_us: WINDOW,
        at_us,
        hits,
    }
}

#[tokio::test]
async fn charges_land_in_their_own_windows() {
    let server = RedisServer::start();
    let clock = conformance::clock();
    let redis = connect(server.url()).await.with_test_clock(clock.clone());
    let mut inspect = server.inspector();
    let now = clock.now_us();
    let index = now / WINDOW;
    let get = |c: &mut redis::Connection, key: &str| -> String { c.get(key).unwrap() };

    // fixed_window: 2 counted by Redis, 5 by the fallback in this window,
    // 9 in a window that has passed (skipped).
    let fw = policy("fw", AlgorithmKind::FixedWindow, 10, WINDOW, None);
    let ops = [StoreOp::new(&fw, "fw:u", 2)];
    assert!(redis.check(&ops).await.unwrap()[0].outcome.allowed);
    let fw_key = "fg:{fw:u}:fw:60000";
    redis
        .reconcile(&[
            charge(AlgorithmKind::FixedWindow, "fw:u", now, 5),
            charge(AlgorithmKind::FixedWindow, "fw:u", now - WINDOW, 9),
            charge(AlgorithmKind::FixedWindow, "fw:new", now, 4),
        ])
        .await
        .unwrap();
    assert_eq!(get(&mut inspect, fw_key), format!("{index}:7"));
    assert_eq!(
        get(&mut inspect, "fg:{fw:new}:fw:60000"),
        format!("{index}:4")
    );
    let ttl: i64 = inspect.pttl("fg:{fw:new}:fw:60000").unwrap();
    assert!(ttl > 0 && ttl <= 60_000 + 600_000, "{ttl}");
    let one = [StoreOp::new(&fw, "fw:u", 3)];
    assert!(
        redis.check(&one).await.unwrap()[0].outcome.allowed,
        "7 + 3 = 10"
    );
    let one = [StoreOp::new(&fw, "fw:u", 1)];
    assert!(!redis.check(&one).await.unwrap()[0].outcome.allowed);

    // sliding_window: the previous window's charges go to `p`, the current
    // one's to `c`; a fresh counter is made in the charge's window.
    let sw = policy("sw", AlgorithmKind::SlidingWindow, 100, WINDOW, None);
    let ops = [StoreOp::new(&sw, "sw:u", 1)];
    assert!(redis.check(&ops).await.unwrap()[0].outcome.allowed);
    redis
        .reconcile(&[
            charge(AlgorithmKind::SlidingWindow, "sw:u", now, 6),
            charge(AlgorithmKind::SlidingWindow, "sw:u", now - WINDOW, 8),
            charge(AlgorithmKind::SlidingWindow, "sw:u", now - 2 * WINDOW, 50),
            charge(AlgorithmKind::SlidingWindow, "sw:old", now - WINDOW, 3),
        ])
        .await
        .unwrap();
    assert_eq!(
        get(&mut inspect, "fg:{sw:u}:sw:60000"),
        format!("{index}:8:7")
    );
    assert_eq!(
        get(&mut inspect, "fg:{sw:old}:sw:60000"),
        format!("{}:0:3", index - 1)
    );
    // Other algorithms are not reconciled.
    redis
        .reconcile(&[charge(AlgorithmKind::SlidingLog, "log:u", now, 3)])
        .await
        .unwrap();
    let exists: bool = inspect.exists("fg:{log:u}:log:60000").unwrap();
    assert!(!exists);
}
