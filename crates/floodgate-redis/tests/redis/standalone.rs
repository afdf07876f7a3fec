//! One standalone server: conformance, keys and TTLs, escaping, NOSCRIPT,
//! accuracy across several stores, and error mapping.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use floodgate_core::{AlgorithmKind, Attributes, Policy};
use floodgate_redis::{Error, RedisConfig, RedisStore, RedisTopology};
use floodgate_store::{Refund, Source, Store, StoreError, StoreOp};
use redis::Commands;

use crate::conformance::{self, policy};
use crate::connect;
use floodgate_e2e::RedisServer;

const S: u64 = 1_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_with_the_local_store() {
    let server = RedisServer::start();
    let clock = conformance::clock();
    let redis = connect(server.url()).await.with_test_clock(clock.clone());
    let local = conformance::local_store(&clock);
    let compared = conformance::run(
        &local,
        &redis,
        &clock,
        "standalone",
        std::env::var("FLOODGATE_CONFORMANCE_STEPS").map_or(120, |s| s.parse().unwrap()),
    )
    .await;
    assert!(compared > 600, "only {compared} outcomes compared");
}

fn user(name: &str) -> Attributes {
    [("user".to_string(), name.to_string())].into()
}

/// Checks `hits` for `name` under `policy`, returning the outcome.
async fn check(
    store: &RedisStore,
    policy: &Policy,
    name: &str,
    hits: u64,
) -> floodgate_core::Outcome {
    let key = policy.counter_key(&user(name));
    store
        .check(&[StoreOp::new(policy, &key, hits)])
        .await
        .unwrap()[0]
        .outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_has_a_bounded_ttl_and_values_cannot_forge_keys() {
    let server = RedisServer::start();
    let store = connect(server.url()).await;
    let policies = [
        policy("sw", AlgorithmKind::SlidingWindow, 5, 10 * S, None),
        policy("fw", AlgorithmKind::FixedWindow, 5, 10 * S, None),
        policy("log", AlgorithmKind::SlidingLog, 5, 10 * S, None),
        policy("tb", AlgorithmKind::TokenBucket, 5, 10 * S, None),
        policy("cc", AlgorithmKind::Concurrency, 5, 10 * S, None),
    ];
    let users = ["a}:{b", "a", "b", "a}", "{b}", "100%", "é"];
    let mut leases = Vec::new();
    for p in &policies {
        for u in users {
            let o = check(&store, p, u, 1).await;
            assert!(o.allowed);
            leases.push((p, u, o.receipt.unwrap()));
        }
        // Exhaust the forging user's quota: nobody else is affected.
        while check(&store, p, "a}:{b", 1).await.allowed {}
        for u in &users[1..] {
            assert_eq!(
                check(&store, p, u, 0).await.remaining,
                4,
                "{} {u}",
                p.name()
            );
        }
    }
    let mut inspector = server.inspector();
    let keys: Vec<String> = inspector.keys("*").unwrap();
    assert_eq!(keys.len(), policies.len() * users.len(), "{keys:?}");
    for p in &policies {
        for u in users {
            let key = store.redis_key(p, &p.counter_key(&user(u)));
            assert!(keys.contains(&key), "{key} missing");
            assert_eq!(key.matches('{').count(), 1, "{key}");
            assert_eq!(key.matches('}').count(), 1, "{key}");
        }
    }
    let assert_ttls = |inspector: &mut redis::Connection| {
        for key in inspector.keys::<_, Vec<String>>("*").unwrap() {
            let ttl: i64 = redis::cmd("PTTL").arg(&key).query(inspector).unwrap();
            // sliding_window keeps 2 windows; the others at most one.
            let bound = if key.contains(":sw:") { 20_000 } else { 10_000 };
            assert!(ttl > 0 && ttl <= bound, "{key} has TTL {ttl} ms");
        }
    };
    assert_ttls(&mut inspector);
    // Refunds and releases keep every TTL bounded; releasing every lease of
    // a counter removes its key.
    let refunds: Vec<Refund<'_>> = leases
        .iter()
        .map(|(p, u, receipt)| Refund {
            policy: p,
            key: Box::leak(p.counter_key(&user(u)).into_boxed_str()),
            hits: 1,
            receipt: *receipt,
            source: Some(Source::Redis),
        })
        .collect();
    store.refund(&refunds).await.unwrap();
    assert_ttls(&mut inspector);
    let cc_key = store.redis_key(&policies[4], &policies[4].counter_key(&user("b")));
    assert!(!inspector.exists::<_, bool>(&cc_key).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_flush_fails_no_check() {
    let server = RedisServer::start();
    let store = connect(server.url()).await;
    let mut inspector = server.inspector();
    let policies: Vec<Policy> = conformance::policies();
    let keys: Vec<String> = policies
        .iter()
        .map(|p| p.counter_key(&user("flush")))
        .collect();
    for round in 0..3 {
        let ops = crate::ops(&policies, &keys, 1);
        let outcomes = store.check(&ops).await.expect("check after SCRIPT FLUSH");
        assert_eq!(outcomes.len(), policies.len());
        assert!(
            outcomes.iter().all(|o| o.outcome.allowed),
            "round {round}: {outcomes:?}"
        );
        let () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query(&mut inspector)
            .unwrap();
        let refund = Refund {
            policy: &policies[2],
            key: &keys[2],
            hits: 1,
            receipt: outcomes[2].outcome.receipt.unwrap(),
            source: Some(Source::Redis),
        };
        store
            .refund(&[refund])
            .await
            .expect("refund after SCRIPT FLUSH");
        let () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query(&mut inspector)
            .unwrap();
    }
    // The scripts are cached again for EVALSHA.
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut inspector)
        .unwrap();
    assert!(info.contains("cmdstat_eval:"), "{info}");
    assert!(
        info.contains("cmdstat_script|load:") || info.contains("cmdstat_script:"),
        "{info}"
    );
}

/// Hammers one key of `policy` from 24 tasks over 3 stores; returns how
/// many checks were allowed.
pub async fn hammer(stores: &[Arc<RedisStore>], policy: &Arc<Policy>, name: &str) -> usize {
    let allowed = Arc::new(AtomicUsize::new(0));
    let key = Arc::new(policy.counter_key(&user(name)));
    let tasks: Vec<_> = (0..24)
        .map(|t| {
            let (store, policy, key, allowed) = (
                stores[t % stores.len()].clone(),
                policy.clone(),
                key.clone(),
                allowed.clone(),
            );
            tokio::spawn(async move {
                for _ in 0..10 {
                    let ops = [StoreOp::new(&policy, &key, 1)];
                    if store.check(&ops).await.unwrap()[0].outcome.allowed {
                        allowed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    allowed.load(Ordering::Relaxed)
}

/// Exact quotas across sidecars: sliding_log, fixed_window and token_bucket
/// admit exactly their quota; sliding_window never more.
pub async fn exact_quota_across_stores(stores: &[Arc<RedisStore>], tag: &str) {
    const DAY: u64 = 86_400 * S;
    let cases = [
        (
            policy("log", AlgorithmKind::SlidingLog, 50, 3_600 * S, None),
            true,
        ),
        (
            policy("fw", AlgorithmKind::FixedWindow, 50, DAY, None),
            true,
        ),
        (
            policy("tb", AlgorithmKind::TokenBucket, 50, DAY, None),
            true,
        ),
        (
            policy("sw", AlgorithmKind::SlidingWindow, 50, DAY, None),
            false,
        ),
    ];
    for (p, exact) in cases {
        let admitted = hammer(stores, &Arc::new(p.clone()), tag).await;
        if exact {
            assert_eq!(admitted, 50, "{} admitted {admitted} of 50", p.name());
        } else {
            assert!(admitted <= 50, "{} admitted {admitted} of 50", p.name());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_sidecars_admit_exactly_the_quota() {
    let server = RedisServer::start();
    let mut stores = Vec::new();
    for _ in 0..3 {
        stores.push(Arc::new(connect(server.url()).await));
    }
    exact_quota_across_stores(&stores, "hammered").await;

    // Concurrency: never more than 5 leases held at once.
    let p = Arc::new(policy("cc", AlgorithmKind::Concurrency, 5, 60 * S, None));
    let key = Arc::new(p.counter_key(&user("holders")));
    let (held, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let tasks: Vec<_> = (0..12)
        .map(|t| {
            let (store, p, key, held, peak) = (
                stores[t % 3].clone(),
                p.clone(),
                key.clone(),
                held.clone(),
                peak.clone(),
            );
            tokio::spawn(async move {
                for _ in 0..8 {
                    let ops = [StoreOp::new(&p, &key, 1)];
                    let o = store.check(&ops).await.unwrap()[0].outcome;
                    if let Some(receipt) = o.receipt {
                        let now = held.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        held.fetch_sub(1, Ordering::SeqCst);
                        let release = Refund {
                            policy: &p,
                            key: &key,
                            hits: 1,
                            receipt,
                            source: Some(Source::Redis),
                        };
                        store.refund(&[release]).await.unwrap();
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let peak = peak.load(Ordering::SeqCst);
    assert!((1..=5).contains(&peak), "peak {peak} leases");
    let o = stores[0].check(&[StoreOp::new(&p, &key, 0)]).await.unwrap()[0].outcome;
    assert_eq!(o.remaining, 5, "every lease was released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_given_up_in_flight_strands_no_queued_check() {
    let server = RedisServer::start();
    // One call in flight at most: a second check waits behind the first.
    let store = Arc::new(
        RedisStore::connect(&RedisConfig {
            timeout: Duration::from_secs(5),
            pool_size: 1,
            ..RedisConfig::new(RedisTopology::Standalone(server.url()))
        })
        .await
        .unwrap(),
    );
    let p = Arc::new(policy(
        "fw",
        AlgorithmKind::FixedWindow,
        10,
        3_600 * S,
        None,
    ));
    let check = |name: &'static str| {
        let (store, p) = (store.clone(), p.clone());
        tokio::spawn(async move {
            let key = p.counter_key(&user(name));
            store.check(&[StoreOp::new(&p, &key, 1)]).await
        })
    };
    // Frozen, so the first check's call stays in flight.
    server.signal("STOP");
    let first = check("first");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let queued = check("queued");
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The first caller goes away (a cancelled request) with its call in
    // flight; the queued check must still be sent.
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    server.signal("CONT");
    let outcome = tokio::time::timeout(Duration::from_secs(4), queued)
        .await
        .expect("the queued check was answered")
        .unwrap()
        .expect("the queued check was decided");
    assert!(outcome[0].outcome.allowed);
    assert_eq!(outcome[0].outcome.remaining, 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_map_to_store_errors() {
    // Nothing listens: a transient connect error naming the target.
    let port = floodgate_e2e::free_port();
    let config = RedisConfig::new(RedisTopology::Standalone(format!(
        "redis://127.0.0.1:{port}"
    )));
    let err = RedisStore::connect(&config).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(matches!(err, Error::Unreachable { .. }));
    assert!(err.to_string().contains(&port.to_string()), "{err}");

    let server = RedisServer::start();
    let store = RedisStore::connect(&RedisConfig {
        timeout: Duration::from_millis(300),
        // One connection, so the late write described below (if any) comes
        // before the first check after the restart.
        pool_size: 1,
        ..RedisConfig::new(RedisTopology::Standalone(server.url()))
    })
    .await
    .unwrap();
    store.ping().await.unwrap();
    // An hour's window: the counts below cannot be cut by a window's end
    // (a 10 s window ended between two checks once in a loaded run).
    let p = policy("fw", AlgorithmKind::FixedWindow, 5, 3_600 * S, None);
    let key = p.counter_key(&user("x"));
    let ops = [StoreOp::new(&p, &key, 1)];
    // A frozen server: the call times out.
    server.signal("STOP");
    let frozen = store.check(&ops).await;
    let ping = store.ping().await;
    server.signal("CONT");
    assert!(matches!(frozen, Err(StoreError::Timeout)), "{frozen:?}");
    assert!(
        matches!(ping, Err(StoreError::Timeout)),
        "ping while frozen: {ping:?}"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    store
        .check(&ops)
        .await
        .expect("works again once the server thaws");
    store.ping().await.unwrap();
    // A dead server: transient errors, never a panic.
    let port = server.port;
    drop(server);
    let dead = store.check(&ops).await.unwrap_err();
    assert!(dead.is_transient(), "{dead:?}");
    // Restarted (empty, without the scripts): once the store has reconnected,
    // not a single check fails.
    let _server = RedisServer::start_on(port, &[]);
    let started = std::time::Instant::now();
    while store.ping().await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no reconnection"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut seen = Vec::new();
    for _ in 0..4 {
        let o = store.check(&ops).await.expect("check after a restart");
        seen.push(o[0].outcome.remaining);
    }
    // fred may still write the check that failed while the server was down
    // once it has reconnected (it counts once, late): hence 4 or 3 first.
    assert!(
        seen == [4, 3, 2, 1] || seen == [3, 2, 1, 0],
        "{seen:?} after {dead:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_count_live_stores_and_lapse() {
    let server = RedisServer::start();
    let clock = crate::conformance::clock();
    let a = crate::connect(server.url())
        .await
        .with_test_clock(clock.clone());
    let b = crate::connect(server.url())
        .await
        .with_test_clock(clock.clone());
    let ttl = Duration::from_secs(6);
    assert_eq!(a.heartbeat(ttl).await.unwrap(), 1);
    assert_eq!(b.heartbeat(ttl).await.unwrap(), 2);
    // Beating again does not count twice.
    assert_eq!(a.heartbeat(ttl).await.unwrap(), 2);
    clock.advance(5_000_000);
    assert_eq!(a.heartbeat(ttl).await.unwrap(), 2, "b still counts at 5 s");
    clock.advance(2_000_000);
    assert_eq!(a.heartbeat(ttl).await.unwrap(), 1, "b lapsed after 6 s");
    let key = "fg:{hb}:instances";
    let pttl: i64 = redis::cmd("PTTL")
        .arg(key)
        .query(&mut server.inspector())
        .unwrap();
    assert!(pttl > 0 && pttl <= 6_000, "{key} PTTL {pttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_is_all_or_nothing_in_one_call() {
    let server = RedisServer::start();
    let store = connect(server.url()).await;
    let roomy = policy("roomy", AlgorithmKind::FixedWindow, 10, 3_600 * S, None);
    let tight = policy("tight", AlgorithmKind::SlidingLog, 1, 3_600 * S, None);
    let keys = [roomy.counter_key(&user("u")), tight.counter_key(&user("u"))];
    let both = |tight_enforced: bool| {
        [
            StoreOp::new(&roomy, &keys[0], 1),
            StoreOp {
                enforced: tight_enforced,
                ..StoreOp::new(&tight, &keys[1], 1)
            },
        ]
    };
    let first = store.check(&both(true)).await.unwrap();
    assert!(first
        .iter()
        .all(|o| o.outcome.allowed && o.outcome.receipt.is_some()));

    // `tight` is spent: the check is denied and `roomy` is not charged,
    // though it reports what it would have had left.
    let second = store.check(&both(true)).await.unwrap();
    assert!(second[0].outcome.allowed && !second[1].outcome.allowed);
    assert!(second.iter().all(|o| o.outcome.receipt.is_none()));
    assert_eq!(second[0].outcome.remaining, 8);
    assert_eq!(check(&store, &roomy, "u", 0).await.remaining, 9);

    // A shadow policy's denial blocks nothing: `roomy` is charged.
    let shadowed = store.check(&both(false)).await.unwrap();
    assert!(shadowed[0].outcome.receipt.is_some() && !shadowed[1].outcome.allowed);
    assert_eq!(check(&store, &roomy, "u", 0).await.remaining, 8);

    // Decided, not charged: the real cost counts, the counter stays.
    let decided = store
        .check(&[
            StoreOp {
                charge: false,
                ..StoreOp::new(&roomy, &keys[0], 2)
            },
            StoreOp {
                charge: false,
                ..StoreOp::new(&roomy, &keys[0], 9)
            },
        ])
        .await
        .unwrap();
    assert!(decided[0].outcome.allowed && decided[0].outcome.receipt.is_none());
    assert!(!decided[1].outcome.allowed, "9 do not fit in the 8 left");
    assert_eq!(check(&store, &roomy, "u", 0).await.remaining, 8);

    // The same counter twice in one check: the second op sees the first
    // charge (it goes in a second call).
    let single = policy("single", AlgorithmKind::FixedWindow, 1, 3_600 * S, None);
    let key = single.counter_key(&user("u"));
    let twice = [
        StoreOp::new(&single, &key, 1),
        StoreOp::new(&single, &key, 1),
    ];
    let outcomes = store.check(&twice).await.unwrap();
    assert!(outcomes[0].outcome.allowed && !outcomes[1].outcome.allowed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_checks_share_calls_and_stay_exact() {
    let server = RedisServer::start();
    let store = Arc::new(connect(server.url()).await);
    // A sliding log: exact, and no window boundary for a run to cross.
    let shared = Arc::new(policy(
        "log",
        AlgorithmKind::SlidingLog,
        100,
        3_600 * S,
        None,
    ));
    let own = Arc::new(policy("tb", AlgorithmKind::TokenBucket, 5, 3_600 * S, None));
    // One key holding a set (counters are strings): the checks that touch
    // it fail, alone.
    let bad = Arc::new(policy(
        "bad",
        AlgorithmKind::FixedWindow,
        5,
        3_600 * S,
        None,
    ));
    let bad_key = bad.counter_key(&user("bad"));
    let mut inspect = server.inspector();
    let _: () = inspect
        .sadd(store.redis_key(&bad, &bad_key), "not a counter")
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query(&mut inspect)
        .unwrap();

    const TASKS: usize = 64;
    const EACH: usize = 10;
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (store, shared, own, bad) =
                (store.clone(), shared.clone(), own.clone(), bad.clone());
            let bad_key = bad_key.clone();
            tokio::spawn(async move {
                let (shared_key, own_key) = (
                    shared.counter_key(&user("everyone")),
                    own.counter_key(&user(&format!("u{t}"))),
                );
                let (mut admitted, mut own_admitted, mut failed) = (0, 0, 0);
                for i in 0..EACH {
                    if t % 16 == 0 && i % 2 == 0 {
                        let err = store
                            .check(&[StoreOp::new(&bad, &bad_key, 1)])
                            .await
                            .unwrap_err();
                        assert!(
                            matches!(&err, StoreError::Protocol(m) if m.starts_with("WRONGTYPE")),
                            "{err:?}"
                        );
                        failed += 1;
                        continue;
                    }
                    let ops = [
                        StoreOp::new(&shared, &shared_key, 1),
                        StoreOp::new(&own, &own_key, 1),
                    ];
                    let outcomes = store.check(&ops).await.expect("a good check never fails");
                    let (shared_ok, own_ok) =
                        (outcomes[0].outcome.allowed, outcomes[1].outcome.allowed);
                    // All or nothing: a check is admitted by both or charged by none.
                    if shared_ok && own_ok {
                        admitted += 1;
                    }
                    if own_ok && outcomes[1].outcome.receipt.is_some() {
                        own_admitted += 1;
                    }
                }
                (admitted, own_admitted, failed)
            })
        })
        .collect();
    let (mut admitted, mut failed) = (0, 0);
    for task in tasks {
        let (a, own_admitted, f) = task.await.unwrap();
        assert!(
            own_admitted <= 5,
            "a per-user quota of 5 admitted {own_admitted}"
        );
        admitted += a;
        failed += f;
    }
    // All or nothing, check after check: exactly the shared quota.
    assert_eq!(admitted, 100);
    assert_eq!(failed, 4 * EACH / 2);
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut inspect)
        .unwrap();
    let calls: usize = stats
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_evalsha:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .expect("EVALSHA counted");
    assert!(
        calls < TASKS * EACH,
        "{calls} EVALSHA for {} checks: concurrent checks were not batched",
        TASKS * EACH
    );
    eprintln!("{} checks in {calls} EVALSHA", TASKS * EACH);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_of_several_checks_fails_whole_or_per_check() {
    let server = RedisServer::start();
    let mut redis = server.inspector();
    let source = floodgate_redis::check_script_source();
    let fw = |hits: &str| format!("fw 1 {hits} 100 60000000 0");
    // One check's ARGV: one value, its now override ("" here), "|", its
    // specs, ";"-separated.
    let check = |ops: usize| vec![format!("|{}", vec![fw("1"); ops].join(";"))];
    let eval = |redis: &mut redis::Connection, keys: &[&str], argv: &[String]| {
        redis::cmd("EVAL")
            .arg(source)
            .arg(keys.len())
            .arg(keys)
            .arg(argv)
            .query::<redis::Value>(redis)
    };

    // A malformed later check: the call fails and nothing was charged, not
    // even the well-formed check before it.
    let two = format!("{};{}", fw("1"), fw("1"));
    for value in [
        "|".to_string(),
        fw("1"),
        format!("x|{}", fw("1")),
        "|fw 1 x 100 60000000 0".to_string(),
        "|xx 1 1 100 60000000 0".to_string(),
        "|fw 1 1 100".to_string(),
        format!("|{two};x"),
    ] {
        let mut argv = check(1);
        argv.push(value.clone());
        let err = eval(&mut redis, &["fg:{a}:fw", "fg:{b}:fw"], &argv).unwrap_err();
        assert!(
            err.to_string().contains("malformed check at ARGV[2]"),
            "{value}: {err}"
        );
    }
    // Or ops that are not as many as the keys.
    for (keys, value) in [
        (&["fg:{a}:fw", "fg:{b}:fw"][..], two.clone()),
        (&["fg:{a}:fw"][..], fw("1")),
    ] {
        let mut argv = check(1);
        argv.push(format!("|{value}"));
        let err = eval(&mut redis, keys, &argv).unwrap_err();
        assert!(err.to_string().contains("keys for"), "{value}: {err}");
    }
    let exists: bool = redis.exists("fg:{a}:fw").unwrap();
    assert!(!exists, "a malformed call charged a check");

    // A key of the wrong type fails its own check; the next one stands.
    // One string per check: the refused one "-1 <message>", the other its
    // 2 + 5 values, 8 bytes each, signed, little-endian.
    let _: () = redis.sadd("fg:{bad}:fw", "not a counter").unwrap();
    let mut argv = check(1);
    argv.extend(check(1));
    let reply = eval(&mut redis, &["fg:{bad}:fw", "fg:{a}:fw"], &argv).unwrap();
    let redis::Value::Array(values) = reply else {
        panic!("{reply:?}");
    };
    assert_eq!(values.len(), 2);
    assert!(
        matches!(&values[0], redis::Value::BulkString(m) if m.starts_with(b"-1 WRONGTYPE")),
        "{values:?}"
    );
    let redis::Value::BulkString(packed) = &values[1] else {
        panic!("{values:?}");
    };
    let second: Vec<i64> = packed
        .chunks_exact(8)
        .map(|bytes| i64::from_le_bytes(bytes.try_into().unwrap()))
        .collect();
    assert_eq!(second.len(), 7, "{second:?}");
    assert_eq!((second[0], second[2]), (1, 1), "the second check charged");
    let counter: String = redis.get("fg:{a}:fw").unwrap();
    assert!(
        counter.ends_with(":1"),
        "the good check was charged once: {counter}"
    );

    // A check of two ops: one string of 2 + 5 × 2 integers.
    let argv = [format!("|{two}")];
    let reply = eval(&mut redis, &["fg:{c}:fw", "fg:{d}:fw"], &argv).unwrap();
    let redis::Value::Array(values) = reply else {
        panic!("{reply:?}");
    };
    let [redis::Value::BulkString(packed)] = &values[..] else {
        panic!("{values:?}");
    };
    assert_eq!(packed.len(), 8 * 12, "2 + 5 × 2 integers");
    for key in ["fg:{c}:fw", "fg:{d}:fw"] {
        let counter: String = redis.get(key).unwrap();
        assert!(counter.ends_with(":1"), "{key} charged once: {counter}");
    }
}
