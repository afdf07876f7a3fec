//! Measurements for the record (run with `--nocapture` to read them): Redis
//! round trips and commands per check matching three policies, and Redis
//! memory per tracked key for each algorithm. Assertions only guard the
//! design (one round trip, one EVALSHA per check), never timings.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use floodgate_core::{AlgorithmKind, Attributes, Policy};
use floodgate_store::{Store, StoreOp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use crate::conformance::policy;
use crate::connect;
use floodgate_e2e::RedisServer;

const S: u64 = 1_000_000;

/// The end of the RESP2 value starting at `pos` in `buf`, if complete.
fn resp_end(buf: &[u8], pos: usize) -> Option<usize> {
    let line_end = pos + buf.get(pos..)?.windows(2).position(|w| w == b"\r\n")?;
    let after = line_end + 2;
    let number = || {
        std::str::from_utf8(&buf[pos + 1..line_end])
            .ok()?
            .parse::<i64>()
            .ok()
    };
    match buf[pos] {
        b'+' | b'-' | b':' => Some(after),
        b'$' => match number()? {
            n if n < 0 => Some(after),
            n => (buf.len() >= after + n as usize + 2).then_some(after + n as usize + 2),
        },
        b'*' => (0..number()?.max(0)).try_fold(after, |at, _| resp_end(buf, at)),
        _ => None,
    }
}

/// Counts the complete RESP values buffered in `buf`, dropping them.
fn take_values(buf: &mut Vec<u8>) -> usize {
    let (mut count, mut at) = (0, 0);
    while let Some(end) = resp_end(buf, at) {
        count += 1;
        at = end;
    }
    buf.drain(..at);
    count
}

/// Requests the client still waits on, and round trips so far: a request
/// sent while nothing is outstanding starts a new round trip.
#[derive(Default)]
struct Turns {
    outstanding: usize,
    round_trips: usize,
}

/// A loopback proxy to `port` that delays replies by 5 ms (so a client that
/// waited for one reply before sending the next request could not hide it)
/// and counts round trips as the client sees them.
async fn round_trip_proxy(port: u16) -> (u16, Arc<Mutex<Turns>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let turns = Arc::new(Mutex::new(Turns::default()));
    let local = listener.local_addr().unwrap().port();
    let shared = turns.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let upstream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            let (mut cr, mut cw) = client.into_split();
            let (mut ur, mut uw) = upstream.into_split();
            let (up_turns, down_turns) = (shared.clone(), shared.clone());
            tokio::spawn(async move {
                let (mut buf, mut pending) = (vec![0; 64 * 1024], Vec::new());
                while let Ok(n) = cr.read(&mut buf).await {
                    if n == 0 || uw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    pending.extend_from_slice(&buf[..n]);
                    let mut t = up_turns.lock().unwrap();
                    for _ in 0..take_values(&mut pending) {
                        if t.outstanding == 0 {
                            t.round_trips += 1;
                        }
                        t.outstanding += 1;
                    }
                }
            });
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>, usize)>();
            tokio::spawn(async move {
                let (mut buf, mut pending) = (vec![0; 64 * 1024], Vec::new());
                while let Ok(n) = ur.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    pending.extend_from_slice(&buf[..n]);
                    let replies = take_values(&mut pending);
                    let due = Instant::now() + Duration::from_millis(5);
                    if tx.send((due, buf[..n].to_vec(), replies)).is_err() {
                        break;
                    }
                }
            });
            tokio::spawn(async move {
                while let Some((due, bytes, replies)) = rx.recv().await {
                    tokio::time::sleep_until(due).await;
                    if cw.write_all(&bytes).await.is_err() {
                        break;
                    }
                    down_turns.lock().unwrap().outstanding -= replies;
                }
            });
        }
    });
    (local, turns)
}

fn info(c: &mut redis::Connection, section: &str) -> String {
    redis::cmd("INFO").arg(section).query(c).unwrap()
}

fn stat(info: &str, name: &str) -> u64 {
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map_or(0, |v| v.trim().parse().unwrap())
}

fn user(i: usize) -> Attributes {
    [("user".to_string(), format!("user-{i:06}"))].into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trips_commands_and_memory_per_key() {
    let server = RedisServer::start();
    let mut inspector = server.inspector();
    let (proxy, turns) = round_trip_proxy(server.port).await;
    let store = connect(format!("redis://127.0.0.1:{proxy}")).await;

    // A check matching three policies.
    let three = [
        policy(
            "ai-per-user",
            AlgorithmKind::SlidingWindow,
            500,
            60 * S,
            None,
        ),
        policy("auth-per-ip", AlgorithmKind::FixedWindow, 150, 60 * S, None),
        policy(
            "api-per-user",
            AlgorithmKind::TokenBucket,
            1_000,
            60 * S,
            None,
        ),
    ];
    let keys: Vec<String> = three.iter().map(|p| p.counter_key(&user(1))).collect();
    let ops = crate::ops(&three, &keys, 1);
    store.check(&ops).await.unwrap();
    let () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query(&mut inspector)
        .unwrap();
    turns.lock().unwrap().round_trips = 0;
    const CHECKS: u64 = 50;
    for _ in 0..CHECKS {
        store.check(&ops).await.unwrap();
    }
    let round_trips = turns.lock().unwrap().round_trips as f64 / CHECKS as f64;
    let stats = info(&mut inspector, "commandstats");
    let calls = |cmd: &str| {
        stats
            .lines()
            .find_map(|l| l.strip_prefix(&format!("cmdstat_{cmd}:calls=")))
            .map_or(0, |r| r.split(',').next().unwrap().parse::<u64>().unwrap())
    };
    let total: u64 = stats
        .lines()
        .filter(|l| {
            l.starts_with("cmdstat_")
                && !l.starts_with("cmdstat_info")
                && !l.starts_with("cmdstat_config")
        })
        .map(|l| {
            l.split("calls=")
                .nth(1)
                .unwrap()
                .split(',')
                .next()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    println!("check matching 3 policies: {round_trips:.2} round trips, {:.1} EVALSHA, {:.1} Redis commands in all (scripts' inner calls included)",
        calls("evalsha") as f64 / CHECKS as f64, total as f64 / CHECKS as f64);
    // One call decides all three policies.
    assert_eq!(calls("evalsha"), CHECKS);
    assert_eq!(round_trips, 1.0, "round trips per check");

    // Memory per tracked key, over 10 000 keys of each algorithm.
    let store = connect(server.url()).await;
    let kinds = [
        (
            "sliding_window",
            policy(
                "ai-per-user",
                AlgorithmKind::SlidingWindow,
                500,
                60 * S,
                None,
            ),
            1,
        ),
        (
            "fixed_window",
            policy("ai-per-user", AlgorithmKind::FixedWindow, 500, 60 * S, None),
            1,
        ),
        (
            "sliding_log (1 entry)",
            policy("ai-per-user", AlgorithmKind::SlidingLog, 500, 60 * S, None),
            1,
        ),
        (
            "sliding_log (100 entries)",
            policy("ai-log-100", AlgorithmKind::SlidingLog, 500, 60 * S, None),
            100,
        ),
        // A long window, so no bucket refills (and expires) while measuring.
        (
            "token_bucket",
            policy(
                "ai-per-user",
                AlgorithmKind::TokenBucket,
                500,
                86_400 * S,
                None,
            ),
            1,
        ),
        (
            "concurrency (1 lease)",
            policy("ai-per-user", AlgorithmKind::Concurrency, 500, 60 * S, None),
            1,
        ),
    ];
    for (name, p, entries) in kinds {
        let count = if entries > 1 { 1_000 } else { 10_000 };
        let before = stat(&info(&mut inspector, "memory"), "used_memory");
        measure_fill(&store, &p, count, entries).await;
        let after = stat(&info(&mut inspector, "memory"), "used_memory");
        let sample = store.redis_key(&p, &p.counter_key(&user(7)));
        let usage: u64 = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(&sample)
            .query(&mut inspector)
            .unwrap();
        println!(
            "{name}: {:.0} bytes per key (used_memory over {count} keys); MEMORY USAGE {sample} = {usage}",
            (after - before) as f64 / count as f64
        );
        let () = redis::cmd("FLUSHALL").query(&mut inspector).unwrap();
    }
}

/// Creates `count` counters of `policy`, each charged `entries` times, 100
/// counters per pipelined check.
async fn measure_fill(
    store: &floodgate_redis::RedisStore,
    policy: &Policy,
    count: usize,
    entries: usize,
) {
    for chunk in (0..count).collect::<Vec<_>>().chunks(100) {
        let keys: Vec<String> = chunk
            .iter()
            .map(|&i| policy.counter_key(&user(i)))
            .collect();
        let ops: Vec<StoreOp<'_>> = keys
            .iter()
            .map(|key| StoreOp::new(policy, key, 1))
            .collect();
        for _ in 0..entries {
            store.check(&ops).await.unwrap();
        }
    }
}
