//! Real `floodgate` processes on a real `redis-server` that dies and comes
//! back (docs/configuration.md, `[fallback]`): checks never fail, fallback limits locally with
//! `ceil(limit / instances)`, and the sidecar returns to Redis by itself.

use std::time::{Duration, Instant};

use floodgate_e2e::{free_port, Floodgate, RedisServer, FREE_PORTS};

fn config(port: u16) -> String {
    format!(
        "{FREE_PORTS}\n[store]\nkind = \"redis\"\n\n[store.redis]\nurl = \"redis://127.0.0.1:{port}\"\nkey_prefix = \"e2e\"\ntimeout = \"100ms\"\n\n[fallback]\ninstances = 2\nprobe_interval = \"200ms\"\nfailure_threshold = 2\n\n[[policy]]\nname = \"api\"\nkey = [\"user\"]\nlimit = 10\nwindow = \"366d\"\nalgorithm = \"fixed_window\"\nfallback = \"local\"\n"
    )
}

fn body(user: &str) -> String {
    format!(r#"{{"attributes": {{"user": "{user}"}}}}"#)
}

/// Checks `user` once; asserts it is a decision (200 or 429), never an error.
fn check(floodgate: &Floodgate, user: &str) -> (bool, String) {
    let r = floodgate.check(&body(user));
    assert!(
        r.status == 200 || r.status == 429,
        "{} {}",
        r.status,
        r.text()
    );
    let json = r.json();
    let source = json["statuses"][0]["source"].as_str().unwrap().to_string();
    (r.status == 200, source)
}

/// The value of the unlabelled gauge `name` on `/metrics`.
fn gauge(floodgate: &Floodgate, name: &str) -> f64 {
    let text = floodgate.http("GET", "/metrics", None).text();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{text}"))
}

fn store_mode(floodgate: &Floodgate) -> String {
    let ready = floodgate.http("GET", "/readyz", None).json();
    ready["store"].as_str().unwrap_or_default().to_string()
}

/// Keeps checking (each must be a decision) until `/readyz` says `mode`;
/// how long it took.
fn until_mode(floodgate: &Floodgate, mode: &str, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        check(floodgate, "busy");
        if store_mode(floodgate) == mode {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "store never became {mode}; log:\n{}",
            floodgate.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn redis_killed_then_restarted_falls_back_and_recovers() {
    let mut redis = RedisServer::start();
    let floodgate = Floodgate::start(&config(redis.port));
    assert_eq!(store_mode(&floodgate), "redis");
    assert_eq!(check(&floodgate, "a"), (true, "redis".to_string()));

    redis.kill();
    let took = until_mode(&floodgate, "fallback", Duration::from_secs(3));
    println!("redis killed → store = fallback in {took:?}");
    // A fresh key admits exactly ceil(10 / 2) = 5, all decided locally.
    let mut allowed = 0;
    for _ in 0..12 {
        let (ok, source) = check(&floodgate, "fresh");
        assert_eq!(source, "fallback");
        allowed += usize::from(ok);
    }
    assert_eq!(allowed, 5);
    assert_eq!(gauge(&floodgate, "floodgate_store_fallback"), 1.0);
    let metrics = floodgate.http("GET", "/metrics", None).text();
    let errors: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("floodgate_store_errors_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(errors >= 2.0, "{metrics}");

    redis.restart();
    let took = until_mode(&floodgate, "redis", Duration::from_secs(5));
    println!("redis back → store = redis in {took:?}");
    assert_eq!(check(&floodgate, "after"), (true, "redis".to_string()));
    assert_eq!(gauge(&floodgate, "floodgate_store_fallback"), 0.0);
    let log = floodgate.log.lock().unwrap().clone();
    assert_eq!(log.matches("switching to fallback").count(), 1, "{log}");
    assert_eq!(log.matches("leaving fallback").count(), 1, "{log}");
}

#[test]
fn starts_without_redis_in_fallback_and_moves_to_redis() {
    let port = free_port();
    let started = Instant::now();
    let floodgate = Floodgate::start(&config(port));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "startup waited on Redis: {:?}",
        started.elapsed()
    );
    assert_eq!(store_mode(&floodgate), "fallback");
    assert_eq!(gauge(&floodgate, "floodgate_store_fallback"), 1.0);
    assert_eq!(check(&floodgate, "a"), (true, "fallback".to_string()));

    let redis = RedisServer::start_on(port, &[]);
    let took = until_mode(&floodgate, "redis", Duration::from_secs(5));
    println!("redis up → store = redis in {took:?}");
    assert_eq!(check(&floodgate, "b"), (true, "redis".to_string()));
    assert_eq!(redis.cli(&["PING"]).trim(), "PONG");
}

/// `instances = "auto"` with Redis down at start-up: the sidecar count is
/// unknown, so the fallback divides by `min_instances` (not silently by 1)
/// and says so in a warning.
#[test]
fn auto_instances_with_redis_down_at_start_use_min_instances() {
    let port = free_port();
    let config = config(port).replace("instances = 2", "instances = \"auto\"\nmin_instances = 4");
    let floodgate = Floodgate::start(&config);
    assert_eq!(store_mode(&floodgate), "fallback");
    assert_eq!(gauge(&floodgate, "floodgate_instances"), 4.0);
    let mut allowed = 0;
    for _ in 0..12 {
        let (ok, source) = check(&floodgate, "fresh");
        assert_eq!(source, "fallback");
        allowed += usize::from(ok);
    }
    assert_eq!(allowed, 3, "ceil(10 / 4)");
    let log = floodgate.log.lock().unwrap().clone();
    assert!(log.contains("sidecar count is unknown"), "{log}");
}

/// Limit 100 per window: 60 admitted by the fallback during an outage are
/// added to Redis when it is back, so the window admits about 100 in total,
/// not 60 + 100.
#[test]
fn an_outage_does_not_double_a_budget() {
    let mut redis = RedisServer::start();
    let config = config(redis.port)
        .replace("instances = 2", "instances = 1")
        .replace("limit = 10\n", "limit = 100\n")
        .replace("window = \"366d\"", "window = \"1h\"");
    let floodgate = Floodgate::start(&config);
    assert_eq!(check(&floodgate, "a"), (true, "redis".to_string()));

    redis.kill();
    until_mode(&floodgate, "fallback", Duration::from_secs(3));
    for _ in 0..60 {
        assert_eq!(check(&floodgate, "spender"), (true, "fallback".to_string()));
    }

    redis.restart();
    until_mode(&floodgate, "redis", Duration::from_secs(5));
    let mut after = 0;
    for _ in 0..150 {
        let (ok, source) = check(&floodgate, "spender");
        assert_eq!(source, "redis");
        after += usize::from(ok);
    }
    assert_eq!(after, 40, "60 during the outage + 40 after = the limit");
    // The counter in Redis says 100.
    let value = redis.cli(&["GET", "e2e:{api:spender}:fw:3600000"]);
    assert!(value.trim().ends_with(":100"), "{value}");
}

/// Limit 10, 6 spent on Redis before an outage that keeps Redis's data (a
/// frozen Redis): the fallback cannot know those 6 and admits its own 10;
/// once Redis is back, with 16 counted, the window admits nothing more.
/// So a window spanning an outage admits max(limit, before + the
/// fallback's share) — here 16, the bound docs/configuration.md states.
#[test]
fn a_window_spent_before_an_outage_admits_at_most_the_fallbacks_share_more() {
    let redis = RedisServer::start();
    let config = config(redis.port)
        .replace("instances = 2", "instances = 1")
        .replace("window = \"366d\"", "window = \"1h\"");
    let floodgate = Floodgate::start(&config);
    for _ in 0..6 {
        assert_eq!(check(&floodgate, "spender"), (true, "redis".to_string()));
    }
    redis.signal("STOP");
    until_mode(&floodgate, "fallback", Duration::from_secs(5));
    let during: Vec<bool> = (0..12).map(|_| check(&floodgate, "spender").0).collect();
    assert_eq!(during.iter().filter(|ok| **ok).count(), 10, "{during:?}");
    redis.signal("CONT");
    until_mode(&floodgate, "redis", Duration::from_secs(5));
    for _ in 0..5 {
        assert_eq!(check(&floodgate, "spender"), (false, "redis".to_string()));
    }
    let value = redis.cli(&["GET", "e2e:{api:spender}:fw:3600000"]);
    assert!(value.trim().ends_with(":16"), "{value}");
    // Redis kept its scripts, the reconcile script included (loaded at
    // connect like the others): no NOSCRIPT reload is reported.
    let log = floodgate.log.lock().unwrap().clone();
    assert!(!log.contains("lost the scripts"), "{log}");
}
