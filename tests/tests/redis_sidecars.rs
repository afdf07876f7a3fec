//! Several real `floodgate` processes sharing one real Redis: the limit is
//! global, not per sidecar; start-up problems with Redis are clear errors.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use floodgate_e2e::{Floodgate, RedisServer, FREE_PORTS};

fn config(redis: &RedisServer, algorithm: &str) -> String {
    format!(
        "{FREE_PORTS}\n[store]\nkind = \"redis\"\n\n[store.redis]\nurl = \"{}\"\nkey_prefix = \"e2e\"\ntimeout = \"500ms\"\n\n[[policy]]\nname = \"shared\"\nkey = [\"user\"]\nlimit = 100\nwindow = \"1m\"\nalgorithm = \"{algorithm}\"\n",
        redis.url()
    )
}

#[test]
fn three_sidecars_admit_exactly_the_quota_together() {
    let redis = RedisServer::start();
    for algorithm in [
        "sliding_log",
        "fixed_window",
        "token_bucket",
        "sliding_window",
    ] {
        let sidecars: Vec<Floodgate> = (0..3)
            .map(|_| Floodgate::start(&config(&redis, algorithm)))
            .collect();
        let ready = sidecars[0].http("GET", "/readyz", None).json();
        assert_eq!(ready["store"], "redis");
        let allowed = Arc::new(AtomicUsize::new(0));
        let body = format!(r#"{{"attributes": {{"user": "hot-{algorithm}"}}}}"#);
        std::thread::scope(|scope| {
            for worker in 0..6 {
                let (sidecars, allowed, body) = (&sidecars, allowed.clone(), &body);
                scope.spawn(move || {
                    for i in 0..50 {
                        let r = sidecars[(worker + i) % 3].check(body);
                        assert!(r.status == 200 || r.status == 429, "{}", r.text());
                        if r.status == 200 {
                            assert_eq!(r.json()["statuses"][0]["source"], "redis");
                            allowed.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                });
            }
        });
        let allowed = allowed.load(Ordering::SeqCst);
        if algorithm == "sliding_window" {
            // A weighted estimate: never more than the quota in one burst.
            // (A burst straddling a window boundary may admit a little
            // less, as the previous window's count weighs in.)
            assert!((90..=100).contains(&allowed), "sliding_window: {allowed}");
        } else {
            assert_eq!(allowed, 100, "{algorithm}");
        }
    }
    // Every key floodgate wrote carries a TTL.
    let keys = redis.cli(&["--scan", "--pattern", "e2e:*"]);
    assert!(!keys.trim().is_empty());
    for key in keys.lines() {
        let ttl: i64 = redis.cli(&["PTTL", key]).trim().parse().unwrap();
        assert!(ttl > 0, "{key} has no TTL ({ttl})");
    }
}

#[test]
fn wrong_credentials_fail_at_startup_with_a_clear_error() {
    let redis = RedisServer::start();
    redis.cli(&["ACL", "SETUSER", "app", "on", ">right", "~*", "+@all"]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("floodgate.toml");
    let url = format!("redis://app:wrong@127.0.0.1:{}", redis.port);
    std::fs::write(
        &path,
        format!("{FREE_PORTS}\n[store]\nkind = \"redis\"\n\n[store.redis]\nurl = \"{url}\"\n"),
    )
    .unwrap();
    let (code, _, err) = floodgate_e2e::run_cli(&["serve", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("credentials") || err.contains("WRONGPASS"),
        "{err}"
    );
    assert!(!err.contains("wrong@"), "the password leaked: {err}");
}

#[test]
fn an_unreadable_tls_ca_file_stops_startup_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("floodgate.toml");
    let port = floodgate_e2e::free_port();
    std::fs::write(
        &path,
        format!("{FREE_PORTS}\n[store]\nkind = \"redis\"\n\n[store.redis]\nurl = \"rediss://127.0.0.1:{port}\"\ntls_ca_file = \"/nonexistent/floodgate-ca.pem\"\n"),
    )
    .unwrap();
    let (code, _, err) = floodgate_e2e::run_cli(&["serve", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("/nonexistent/floodgate-ca.pem"), "{err}");
}
