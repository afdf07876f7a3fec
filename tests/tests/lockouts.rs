//! Lockouts (`block_for`) with the real binary: a client hammering a login
//! is locked out on every sidecar sharing Redis, with a truthful
//! `Retry-After`, answered from the deny cache while the block lasts, and
//! let in again when it ends; the same on the local store.

use std::time::{Duration, Instant};

use floodgate_e2e::{Floodgate, HttpResponse, RedisServer, FREE_PORTS};

/// Three logins a second per user; a denial locks the user out for 3 s.
const LOGIN: &str = "[[policy]]\nname = \"login\"\nmatch = { endpoint = \"login\" }\nkey = [\"user\"]\nlimit = 3\nwindow = \"1s\"\nalgorithm = \"fixed_window\"\nblock_for = \"3s\"\n";

const BODY: &str = r#"{"attributes": {"user": "mallory", "endpoint": "login"}}"#;

fn redis_config(redis: &RedisServer) -> String {
    format!(
        "{FREE_PORTS}\n[store]\nkind = \"redis\"\n\n[store.redis]\nurl = \"{}\"\nkey_prefix = \"e2e\"\ntimeout = \"500ms\"\n\n{LOGIN}",
        redis.url()
    )
}

/// `retry_after_ms` of a denial, checking it agrees with `Retry-After`.
fn retry_ms(r: &HttpResponse) -> u64 {
    assert_eq!(r.status, 429, "{}", r.text());
    let body = r.json();
    assert_eq!(body["allowed"], false);
    assert_eq!(body["policy"], "login");
    let ms = body["retry_after_ms"].as_u64().unwrap();
    let header: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert_eq!(header, ms.div_ceil(1_000), "Retry-After rounds the wait up");
    ms
}

/// Hammers `sidecar` until the login is denied (at most 20 tries); returns
/// the denial and when it was answered.
fn hammer(sidecar: &Floodgate) -> (HttpResponse, Instant) {
    for _ in 0..20 {
        let r = sidecar.check(BODY);
        if r.status == 429 {
            return (r, Instant::now());
        }
        assert_eq!(r.status, 200, "{}", r.text());
    }
    panic!("never denied");
}

/// The value of the counter `name` on `/metrics` (0 when absent).
fn counter(sidecar: &Floodgate, name: &str) -> u64 {
    let text = sidecar.http("GET", "/metrics", None).text();
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// After the denial at `denied_at`: still refused past the 1 s window (the
/// counter alone would allow), then let in once the 3 s block has ended.
fn lifted_after_the_block(sidecars: &[&Floodgate], denied_at: Instant) {
    std::thread::sleep(Duration::from_millis(1_300));
    for sidecar in sidecars {
        let ms = retry_ms(&sidecar.check(BODY));
        assert!((1..=1_700).contains(&ms), "{ms} ms left of the block");
    }
    let end = denied_at + Duration::from_millis(3_150);
    std::thread::sleep(end.saturating_duration_since(Instant::now()));
    let r = sidecars[sidecars.len() - 1].check(BODY);
    assert_eq!(r.status, 200, "the block has ended: {}", r.text());
}

#[test]
fn a_hammering_client_is_locked_out_on_every_sidecar_sharing_redis() {
    let redis = RedisServer::start();
    let a = Floodgate::start(&redis_config(&redis));
    let b = Floodgate::start(&redis_config(&redis));
    let (denied, denied_at) = hammer(&a);
    let ms = retry_ms(&denied);
    assert!(
        (2_500..=3_000).contains(&ms),
        "the block's end, not the window's: {ms}"
    );
    assert_eq!(denied.json()["reset_after_ms"].as_u64(), Some(ms));
    // The record is in Redis under the counter's hash tag, with its TTL.
    let pttl: i64 = redis
        .cli(&["PTTL", "e2e:{login:mallory}:block"])
        .trim()
        .parse()
        .unwrap();
    assert!((1..=3_000).contains(&pttl), "pttl {pttl}");
    // The other sidecar refuses too, with the time left of the same block.
    let other = retry_ms(&b.check(BODY));
    assert!(other <= ms && other > 2_000, "{other} vs {ms}");
    // Further tries on it are answered from its deny cache.
    let hits = counter(&b, "floodgate_deny_cache_hits_total");
    for _ in 0..5 {
        retry_ms(&b.check(BODY));
    }
    assert!(counter(&b, "floodgate_deny_cache_hits_total") >= hits + 5);
    // Another user is not locked out.
    let r = b.check(r#"{"attributes": {"user": "alice", "endpoint": "login"}}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    lifted_after_the_block(&[&a, &b], denied_at);
}

#[test]
fn the_local_store_locks_out_the_same_way() {
    let sidecar = Floodgate::start(&format!("{FREE_PORTS}\n{LOGIN}"));
    let (denied, denied_at) = hammer(&sidecar);
    let ms = retry_ms(&denied);
    assert!((2_500..=3_000).contains(&ms), "{ms}");
    lifted_after_the_block(&[&sidecar], denied_at);
}

#[test]
fn a_lockout_on_a_concurrency_policy_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("floodgate.toml");
    std::fs::write(
        &path,
        format!("{FREE_PORTS}\n[[policy]]\nname = \"uploads\"\nkey = [\"user\"]\nlimit = 2\nalgorithm = \"concurrency\"\nblock_for = \"15m\"\n"),
    )
    .unwrap();
    let (code, _, err) = floodgate_e2e::run_cli(&["check-config", path.to_str().unwrap()]);
    assert_ne!(code, 0, "{err}");
    assert!(err.contains(":10:13"), "positioned: {err}");
    assert!(
        err.contains("block_for does not apply to concurrency policies"),
        "{err}"
    );
}

#[test]
fn repeat_offences_double_the_block_on_redis() {
    let redis = RedisServer::start();
    let config = redis_config(&redis).replace(
        "block_for = \"3s\"\n",
        "block_for = \"1s\"\nblock_escalation = true\nblock_max = \"4s\"\n",
    );
    let sidecar = Floodgate::start(&config);
    let listed = sidecar.http("GET", "/v1/policies", None).json();
    assert_eq!(listed["policies"][0]["block_for_ms"], 1_000);
    assert_eq!(listed["policies"][0]["block_max_ms"], 4_000);
    let mut blocks = Vec::new();
    for _ in 0..2 {
        let (denied, _) = hammer(&sidecar);
        let ms = retry_ms(&denied);
        blocks.push(ms);
        std::thread::sleep(Duration::from_millis(ms + 50));
    }
    assert!((800..=1_000).contains(&blocks[0]), "{blocks:?}");
    assert!(
        (1_800..=2_000).contains(&blocks[1]),
        "the second block doubles: {blocks:?}"
    );
}
