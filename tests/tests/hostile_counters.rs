//! Counters stay meaningful across a reload, against the real binary and a
//! file change: a policy whose window grows must not leave a counter denied
//! for longer than the new window (nor, in Redis, keep a key beyond it).
//! And while a reload rolls across sidecars that share Redis, two of them
//! running two windows of one policy neither reset nor lock each other.

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

// The grown fixed window is an hour long, so that no window boundary falls
// among the checks after the reload, however slow the machine.
const HOUR_MS: u64 = 3_600_000;

#[test]
fn local_fixed_window_grown_by_reload() {
    a_longer_window_does_not_lock_the_counter("", "fixed_window", "1s", "1h", HOUR_MS);
}

#[test]
fn local_sliding_window_grown_by_reload() {
    a_longer_window_does_not_lock_the_counter("", "sliding_window", "10s", "100s", 100_000);
}

#[test]
fn redis_fixed_and_sliding_windows_grown_by_reload() {
    let redis = RedisServer::start();
    let store = redis_store(&redis);
    a_longer_window_does_not_lock_the_counter(&store, "fixed_window", "1s", "1h", HOUR_MS);
    a_longer_window_does_not_lock_the_counter(&store, "sliding_window", "10s", "100s", 100_000);
    // Each window is its own key, and no key outlives its window (two for
    // sliding_window).
    let keys = redis.cli(&["KEYS", "reload:*"]);
    let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
    assert!(keys.contains(&"reload:{p:u1}:fw:3600000"), "{keys:?}");
    assert!(keys.contains(&"reload:{p:u1}:sw:100000"), "{keys:?}");
    for key in keys.into_iter().filter(|k| k.starts_with("reload:{p:")) {
        let (kind, window_ms) = key.rsplit_once("}:").unwrap().1.split_once(':').unwrap();
        let window_ms: i64 = window_ms.parse().unwrap();
        let bound = if kind == "sw" {
            2 * window_ms
        } else {
            window_ms
        };
        let ttl: i64 = redis.cli(&["PTTL", key]).trim().parse().unwrap();
        assert!(ttl > 0 && ttl <= bound, "{key} has TTL {ttl} ms");
    }
}

/// Two sidecars on one Redis, one already on the new window and one still
/// on the old (a reload rolling across pods), checked alternately for one
/// user: each admits its own limit and no more, so together at most the
/// sum of the two limits, and neither is locked out by the other.
#[test]
fn sidecars_on_two_windows_of_one_policy_count_apart() {
    let redis = RedisServer::start();
    let store = redis_store(&redis);
    for algorithm in ["fixed_window", "sliding_window"] {
        let user = format!("roll-{algorithm}");
        let old = Floodgate::start(&config(&store, algorithm, "1h"));
        let new = Floodgate::start(&config(&store, algorithm, "2h"));
        let mut admitted = [0, 0];
        for _ in 0..10 {
            for (i, fg) in [&old, &new].into_iter().enumerate() {
                if check(fg, &user).0 == 200 {
                    admitted[i] += 1;
                }
            }
        }
        assert_eq!(admitted, [3, 3], "{algorithm}: limit 3 on each window");
    }
}
