//! Several real `floodgate` processes sharing one real Redis: the limit is
//! global, not per sidecar; start-up problems with Redis are clear errors.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use floodgate_e2e::{Floodgate, RedisServer, FREE_PORTS};

fn config(redis: &RedisServer, algorithm: &str) -> String {
    format!(
        "{FREE_PORTS}\n[store]\nkind = \"redis\"\n\n[store.redis]\nurl = \"{}\"\nkey_prefix = \"e2e\"\ntimeout = \"500ms\"\n\n[[policy]]\nname = \"shared\"\nkey = [\"user\"]\nlimit = 100\nwindow = \"1h\"\nalgorithm = \"{algorithm}\"\n",
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

/// `EVALSHA` calls Redis has answered since its start.
fn evalsha_calls(redis: &RedisServer) -> u64 {
    redis
        .cli(&["INFO", "commandstats"])
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_evalsha:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.trim().parse().unwrap())
}

#[test]
fn a_key_over_its_limit_is_denied_without_asking_redis_again() {
    let redis = RedisServer::start();
    for deny_cache in [true, false] {
        let user = format!("hot-{deny_cache}");
        let config = format!(
            "{FREE_PORTS}\n[store]\nkind = \"redis\"\n\n[store.redis]\nurl = \"{}\"\ndeny_cache = {deny_cache}\n\n[fallback]\ninstances = 1\n\n[[policy]]\nname = \"hot\"\nkey = [\"user\"]\nlimit = 5\nwindow = \"1h\"\nalgorithm = \"sliding_log\"\n",
            redis.url()
        );
        // A fixed `instances`: no heartbeat EVALSHA to blur the count.
        let sidecar = Floodgate::start(&config);
        let body = format!(r#"{{"attributes": {{"user": "{user}"}}}}"#);
        for _ in 0..5 {
            assert_eq!(sidecar.check(&body).status, 200);
        }
        let first = sidecar.check(&body);
        assert_eq!(first.status, 429);
        let before = evalsha_calls(&redis);
        for _ in 0..200 {
            let r = sidecar.check(&body);
            assert_eq!(r.status, 429, "{}", r.text());
            let json = r.json();
            assert_eq!(json["statuses"][0]["source"], "redis");
            assert!(json["retry_after_ms"].as_u64().unwrap() > 0);
            assert!(r.header("retry-after").is_some());
        }
        let calls = evalsha_calls(&redis) - before;
        let metrics = sidecar.http("GET", "/metrics", None).text();
        let hits: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("floodgate_deny_cache_hits_total "))
            .map_or(0.0, |n| n.trim().parse().unwrap());
        if deny_cache {
            assert_eq!(calls, 0, "denials answered from the cache");
            assert!(hits >= 200.0, "{hits}");
        } else {
            assert_eq!(calls, 200, "every check asks Redis");
            assert_eq!(hits, 0.0);
        }
    }
}
