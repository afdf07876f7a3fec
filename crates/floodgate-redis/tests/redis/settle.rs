//! Reserve and settle, local vs Redis: the same random sequence of
//! reservations, settles (overruns, refunds, exact), repeated and forged
//! settles, peeks and clock moves against both stores, on one `ManualClock`
//! — every outcome and every settle result must agree. Then: a settle is
//! one script call on the counter's slot, and a reservation's record shares
//! the counter's hash tag.

use floodgate_core::{testing, AlgorithmKind, Attributes, Clock, ManualClock, Policy};
use floodgate_e2e::{Cluster, RedisServer};
use floodgate_store::{Settle, Settled, Store, StoreOp};

use crate::conformance;
use crate::{connect, connect_cluster};

const MS: u64 = 1_000;
const S: u64 = 1_000_000;

fn settling(
    name: &str,
    kind: AlgorithmKind,
    limit: u64,
    window_us: u64,
    burst: Option<u64>,
) -> Policy {
    testing::policy(kind, limit, window_us)
        .name(name)
        .burst(burst)
        .settle(true)
        .build()
}

fn policies() -> Vec<Policy> {
    use AlgorithmKind::*;
    vec![
        settling("sw", SlidingWindow, 50, S, None),
        settling("sw-odd", SlidingWindow, 70, 10 * S + 3 * MS, None),
        settling("fw", FixedWindow, 50, S, None),
        settling("fw-odd", FixedWindow, 30, 1_700 * MS, None),
        settling("tb", TokenBucket, 40, S, Some(30)),
        settling("tb-odd", TokenBucket, 30, 7 * S, None),
    ]
}

/// A reservation both stores made: its nonce and issue times.
struct Reserved {
    nonce: u128,
    local_at: u64,
    redis_at: u64,
    hits: u64,
    spent: bool,
}

/// xorshift64*, as the conformance suite's.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

async fn settle_both(
    local: &dyn Store,
    redis: &dyn Store,
    policy: &Policy,
    key: &str,
    r: &Reserved,
    actual: u64,
) -> (Settled, Settled) {
    let s = |issued_us| Settle {
        policy,
        key,
        nonce: r.nonce,
        issued_us,
        actual,
    };
    (
        local.settle(&[s(r.local_at)]).await.unwrap()[0],
        redis.settle(&[s(r.redis_at)]).await.unwrap()[0],
    )
}

/// Runs `steps` random steps per policy; panics at the first difference.
/// Returns how many results were compared.
async fn run(
    local: &dyn Store,
    redis: &dyn Store,
    clock: &ManualClock,
    tag: &str,
    steps: usize,
) -> usize {
    let mut rng = 0x2545_F491_4F6C_DD1D ^ tag.len() as u64;
    let mut compared = 0;
    let (mut applied, mut spent, mut overruns, mut refunds) = (0, 0, 0, 0);
    for policy in &policies() {
        let attributes: Attributes =
            [("user".to_string(), format!("{tag}-{}", policy.name()))].into();
        let key = policy.counter_key(&attributes);
        let limit = policy.burst();
        let mut reserved: Vec<Reserved> = Vec::new();
        let mut log: Vec<String> = Vec::new();
        for step in 0..steps {
            let roll = next(&mut rng) % 100;
            let at = clock.now_us();
            if roll < 35 {
                let hits = [1, 5, 10, limit / 2, limit][(next(&mut rng) % 5) as usize];
                let nonce = u128::from(next(&mut rng)) << 64 | u128::from(next(&mut rng));
                log.push(format!("reserve {hits}"));
                let op = StoreOp {
                    reserve: Some(nonce),
                    ..StoreOp::new(policy, &key, hits)
                };
                let (l, r) = (
                    local.check(&[op]).await.unwrap(),
                    redis.check(&[op]).await.unwrap(),
                );
                assert_eq!(
                    l[0].outcome,
                    r[0].outcome,
                    "{} step {step} at {at}: {log:?}",
                    policy.name()
                );
                if let (Some(lr), Some(rr)) = (l[0].outcome.receipt, r[0].outcome.receipt) {
                    reserved.push(Reserved {
                        nonce,
                        local_at: lr.at_us,
                        redis_at: rr.at_us,
                        hits,
                        spent: false,
                    });
                }
            } else if roll < 65 && !reserved.is_empty() {
                // Mostly one not settled yet; now and then a spent one again.
                let open: Vec<usize> = (0..reserved.len())
                    .filter(|&i| !reserved[i].spent)
                    .collect();
                let i = if open.is_empty() || next(&mut rng) % 4 == 0 {
                    (next(&mut rng) % reserved.len() as u64) as usize
                } else {
                    open[(next(&mut rng) % open.len() as u64) as usize]
                };
                // As often below the estimate as above it, up to twice it.
                let actual = next(&mut rng) % (2 * reserved[i].hits + 2);
                log.push(format!("settle #{i} with {actual}"));
                let (l, r) = settle_both(local, redis, policy, &key, &reserved[i], actual).await;
                assert_eq!(l, r, "{} step {step} at {at}: {log:?}", policy.name());
                match l {
                    Settled::Applied { estimate } => {
                        applied += 1;
                        overruns += usize::from(actual > estimate);
                        refunds += usize::from(actual < estimate);
                    }
                    Settled::Spent => spent += 1,
                    _ => {}
                }
                reserved[i].spent |= matches!(l, Settled::Applied { .. });
            } else if roll < 72 {
                let forged = Reserved {
                    nonce: u128::from(next(&mut rng)),
                    local_at: at,
                    redis_at: at,
                    hits: 0,
                    spent: false,
                };
                let (l, r) = settle_both(local, redis, policy, &key, &forged, 0).await;
                assert_eq!((l, r), (Settled::Unknown, Settled::Unknown));
            } else if roll < 85 {
                let w = policy.window_us();
                let by = [1, 999, MS, w / 3, w + 1, 3 * w][(next(&mut rng) % 6) as usize];
                log.push(format!("advance {by}"));
                clock.advance(by);
            } else {
                let op = StoreOp::new(policy, &key, 0);
                let (l, r) = (
                    local.check(&[op]).await.unwrap(),
                    redis.check(&[op]).await.unwrap(),
                );
                assert_eq!(
                    l[0].outcome,
                    r[0].outcome,
                    "{} peek at step {step}: {log:?}",
                    policy.name()
                );
            }
            compared += 1;
        }
    }
    assert!(
        applied >= 12 && spent > 0 && overruns > 0 && refunds > 0,
        "too few cases: {applied} settled, {spent} spent, {overruns} overruns, {refunds} refunds"
    );
    compared
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settle_conformance_with_the_local_store() {
    let server = RedisServer::start();
    let clock = conformance::clock();
    let redis = connect(server.url()).await.with_test_clock(clock.clone());
    let local = conformance::local_store(&clock);
    let compared = run(&local, &redis, &clock, "standalone", 150).await;
    assert!(compared >= 900, "only {compared} compared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settle_conformance_on_a_cluster() {
    let cluster = Cluster::start();
    let clock = conformance::clock();
    let redis = connect_cluster(cluster.urls())
        .await
        .with_test_clock(clock.clone());
    let local = conformance::local_store(&clock);
    run(&local, &redis, &clock, "cluster", 60).await;
}

/// The record lives next to its counter, in its slot, and lapses by its
/// TTL: two windows, never forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_record_shares_the_counter_slot_and_expires() {
    let server = RedisServer::start();
    let store = connect(server.url()).await;
    let mut inspector = server.inspector();
    let policy = settling("tokens", AlgorithmKind::FixedWindow, 1_000, 60 * S, None);
    let key = policy.counter_key(&[("user".to_string(), "alice".to_string())].into());
    let nonce = 0xfeed_u128;
    let op = StoreOp {
        reserve: Some(nonce),
        ..StoreOp::new(&policy, &key, 100)
    };
    let outcome = store.check(&[op]).await.unwrap()[0].outcome;
    let record = format!("fg:{{tokens:alice}}:fw:60000:r:{nonce:032x}");
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&record)
        .query(&mut inspector)
        .unwrap();
    assert!((119_000..=120_000).contains(&ttl), "ttl {ttl}");
    let slot = |k: &str| fred::util::redis_keyslot(k.as_bytes());
    assert_eq!(slot(&record), slot(&store.redis_key(&policy, &key)));
    let s = Settle {
        policy: &policy,
        key: &key,
        nonce,
        issued_us: outcome.receipt.unwrap().at_us,
        actual: 40,
    };
    assert_eq!(
        store.settle(&[s]).await.unwrap(),
        vec![Settled::Applied { estimate: 100 }]
    );
    assert_eq!(store.settle(&[s]).await.unwrap(), vec![Settled::Spent]);
    let value: String = redis::cmd("GET")
        .arg(&record)
        .query(&mut inspector)
        .unwrap();
    assert!(value.starts_with("s:"), "{value}");
    let ttl_after: i64 = redis::cmd("PTTL")
        .arg(&record)
        .query(&mut inspector)
        .unwrap();
    assert!(
        ttl_after > 0 && ttl_after <= ttl,
        "the marker keeps the record's expiry"
    );
    let counter: String = redis::cmd("GET")
        .arg(store.redis_key(&policy, &key))
        .query(&mut inspector)
        .unwrap();
    assert!(counter.ends_with(":40"), "{counter}");
}

/// `INFO commandstats` as (command, calls, usec_per_call).
pub(crate) fn commandstats(inspector: &mut redis::Connection) -> Vec<(String, u64, f64)> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(inspector)
        .unwrap();
    info.lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let field = |f: &str| {
                rest.split(',')
                    .find_map(|kv| kv.strip_prefix(&format!("{f}=")))
                    .and_then(|v| v.parse::<f64>().ok())
            };
            Some((
                name.to_string(),
                field("calls")? as u64,
                field("usec_per_call")?,
            ))
        })
        .collect()
}

/// For the record (run with `--nocapture`): what a settle costs Redis —
/// one `EVALSHA` per settle (asserted), the commands it runs inside, the
/// server time per call, and the client's time per settle in a sequential
/// loop (a debug build: compare with the check loop beside it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_settle_costs_redis() {
    const N: usize = 2_000;
    let server = RedisServer::start();
    let store = connect(server.url()).await;
    let mut inspector = server.inspector();
    let policy = settling(
        "tokens",
        AlgorithmKind::SlidingWindow,
        1_000_000_000,
        60 * S,
        None,
    );
    let key = policy.counter_key(&[("user".to_string(), "bench".to_string())].into());
    let mut reserved = Vec::with_capacity(N);
    let () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query(&mut inspector)
        .unwrap();
    let started = std::time::Instant::now();
    for n in 0..N {
        let nonce = n as u128 + 1;
        let op = StoreOp {
            reserve: Some(nonce),
            ..StoreOp::new(&policy, &key, 500)
        };
        let outcome = store.check(&[op]).await.unwrap()[0].outcome;
        reserved.push((nonce, outcome.receipt.unwrap().at_us));
    }
    let check_us = started.elapsed().as_micros() as f64 / N as f64;
    let check_stats = commandstats(&mut inspector);
    let () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query(&mut inspector)
        .unwrap();
    let started = std::time::Instant::now();
    for (n, (nonce, issued_us)) in reserved.iter().enumerate() {
        let s = Settle {
            policy: &policy,
            key: &key,
            nonce: *nonce,
            issued_us: *issued_us,
            actual: (n as u64 * 37) % 1_000,
        };
        assert!(matches!(
            store.settle(&[s]).await.unwrap()[0],
            Settled::Applied { .. }
        ));
    }
    let settle_us = started.elapsed().as_micros() as f64 / N as f64;
    let stats = commandstats(&mut inspector);
    let calls = |name: &str| stats.iter().find(|s| s.0 == name).map_or(0, |s| s.1);
    assert_eq!(
        calls("evalsha"),
        N as u64,
        "one script call per settle: {stats:?}"
    );
    let inside: u64 = stats
        .iter()
        .filter(|s| {
            !matches!(
                s.0.as_str(),
                "evalsha" | "info" | "config|resetstat" | "config"
            )
        })
        .map(|s| s.1)
        .sum();
    let server_us = stats.iter().find(|s| s.0 == "evalsha").map_or(0.0, |s| s.2);
    eprintln!(
        "settle: 1 EVALSHA + {:.2} commands inside per settle ({stats:?}); \
         Redis {server_us:.1} µs per EVALSHA; client {settle_us:.0} µs per settle \
         vs {check_us:.0} µs per reserving check (sequential loop, this build); \
         the reserving checks: {check_stats:?}",
        inside as f64 / N as f64
    );
}

/// The same id settled at once by many callers (sidecars): one applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_settles_on_redis_apply_once() {
    let server = RedisServer::start();
    let store = std::sync::Arc::new(connect(server.url()).await);
    let policy = std::sync::Arc::new(settling(
        "tokens",
        AlgorithmKind::SlidingWindow,
        1_000,
        60 * S,
        None,
    ));
    let key = policy.counter_key(&[("user".to_string(), "race".to_string())].into());
    let op = StoreOp {
        reserve: Some(7),
        ..StoreOp::new(&policy, &key, 600)
    };
    let issued_us = store.check(&[op]).await.unwrap()[0]
        .outcome
        .receipt
        .unwrap()
        .at_us;
    let tasks: Vec<_> = (0..24)
        .map(|_| {
            let (store, policy, key) = (store.clone(), policy.clone(), key.clone());
            tokio::spawn(async move {
                let s = Settle {
                    policy: &policy,
                    key: &key,
                    nonce: 7,
                    issued_us,
                    actual: 0,
                };
                store.settle(&[s]).await.unwrap()[0]
            })
        })
        .collect();
    let mut applied = 0;
    for task in tasks {
        match task.await.unwrap() {
            Settled::Applied { .. } => applied += 1,
            other => assert_eq!(other, Settled::Spent),
        }
    }
    assert_eq!(applied, 1);
    let peek = store
        .check(&[StoreOp::new(&policy, &key, 0)])
        .await
        .unwrap()[0]
        .outcome;
    assert_eq!(peek.remaining, 1_000, "refunded once");
}
