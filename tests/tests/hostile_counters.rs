//! Counters stay meaningful across a reload, against the real binary and a
//! file change: a policy whose window grows must not leave a counter denied
//! for longer than the new window (nor, in Redis, keep a key beyond it).

use std::path::Path;
use std::time::{Duration, Instant};

use floodgate_e2e::{Floodgate, RedisServer, FREE_PORTS};

/// The config: `store` (a `[store]` section or ""), then one policy of
/// limit 3 per user with this algorithm and window.
fn config(store: &str, algorithm: &str, window: &str) -> String {
    format!(
        "{FREE_PORTS}\n{store}\n[[policy]]\nname = \"p\"\nkey = [\"user\"]\nlimit = 3\nwindow = \"{window}\"\nalgorithm = \"{algorithm}\"\n"
    )
}

fn redis_store(redis: &RedisServer) -> String {
    format!(
        "[store]\nkind = \"redis\"\n\n[store.redis]\nurl = \"{}\"\nkey_prefix = \"reload\"\ntimeout = \"500ms\"\n",
        redis.url()
    )
}

/// One check of `user`: its status and `reset_after_ms`.
fn check(fg: &Floodgate, user: &str) -> (u16, u64) {
    let r = fg.check(&format!(r#"{{"attributes": {{"user": "{user}"}}}}"#));
    assert!(r.status == 200 || r.status == 429, "{}", r.text());
    (r.status, r.json()["reset_after_ms"].as_u64().unwrap())
}

/// Checks `user` until denied (a window boundary may pass in between).
fn exhaust(fg: &Floodgate, user: &str) {
    for _ in 0..20 {
        if check(fg, user).0 == 429 {
            return;
        }
    }
    panic!("{user} was never denied");
}

/// Replaces `path` as editors do and waits (≤ 5 s) until the `n`th reload
/// is logged.
fn reload(fg: &Floodgate, path: &Path, contents: &str, n: usize) {
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while fg.log.lock().unwrap().matches("config reloaded").count() < n {
        assert!(
            Instant::now() < deadline,
            "no reload logged; log:\n{}",
            fg.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Exhausts a user under `before`, reloads to `after` (a 10× longer
/// window) and sees the user allowed at once, counted in the new window.
fn a_longer_window_does_not_lock_the_counter(
    store: &str,
    algorithm: &str,
    before: &str,
    after: &str,
    after_ms: u64,
) {
    let fg = Floodgate::start(&config(store, algorithm, before));
    exhaust(&fg, "u1");
    reload(&fg, &fg.config_path(), &config(store, algorithm, after), 1);
    let (status, reset_ms) = check(&fg, "u1");
    assert_eq!(status, 200, "{algorithm} {before} → {after}: still denied");
    assert!(reset_ms <= 2 * after_ms, "reset_after_ms {reset_ms}");
    // From then on it counts under the new window: 3 in all, then denied
    // until at most the new window's reset.
    assert_eq!(check(&fg, "u1").0, 200);
    assert_eq!(check(&fg, "u1").0, 200);
    let (status, reset_ms) = check(&fg, "u1");
    assert_eq!(status, 429);
    assert!(reset_ms <= 2 * after_ms, "reset_after_ms {reset_ms}");
}

#[test]
fn local_fixed_window_grown_by_reload() {
    a_longer_window_does_not_lock_the_counter("", "fixed_window", "1s", "10s", 10_000);
}

#[test]
fn local_sliding_window_grown_by_reload() {
    a_longer_window_does_not_lock_the_counter("", "sliding_window", "10s", "100s", 100_000);
}

#[test]
fn redis_fixed_and_sliding_windows_grown_by_reload() {
    let redis = RedisServer::start();
    let store = redis_store(&redis);
    a_longer_window_does_not_lock_the_counter(&store, "fixed_window", "1s", "10s", 10_000);
    a_longer_window_does_not_lock_the_counter(&store, "sliding_window", "10s", "100s", 100_000);
    // No key outlives the new windows.
    for key in redis
        .cli(&["KEYS", "reload:*"])
        .lines()
        .filter(|k| !k.is_empty())
    {
        let ttl: i64 = redis.cli(&["PTTL", key]).trim().parse().unwrap();
        assert!(ttl > 0 && ttl <= 200_000, "{key} has TTL {ttl} ms");
    }
}
