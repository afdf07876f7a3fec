//! A real `floodgate` on a Redis that stops answering without closing its
//! connections (a `redis-server` paused with `SIGSTOP`: the kernel keeps
//! the sockets open, nothing replies): the breaker notices and checks are
//! answered by the fallback, also when only one Cluster node is gone and
//! the others keep answering.

use std::time::{Duration, Instant};

use floodgate_e2e::{Cluster, Floodgate, RedisServer, FREE_PORTS};

const POLICY: &str = "\n[[policy]]\nname = \"api\"\nkey = [\"user\"]\nlimit = 1000\nwindow = \"1h\"\nalgorithm = \"fixed_window\"\nfallback = \"local\"\n";

fn body(user: &str) -> String {
    format!(r#"{{"attributes": {{"user": "{user}"}}}}"#)
}

/// Checks `user`; asserts a decision (200 or 429), returns its source.
fn source(floodgate: &Floodgate, user: &str) -> String {
    let r = floodgate.check(&body(user));
    assert!(
        r.status == 200 || r.status == 429,
        "{} {}",
        r.status,
        r.text()
    );
    r.json()["statuses"][0]["source"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn store_mode(floodgate: &Floodgate) -> String {
    let ready = floodgate.http("GET", "/readyz", None).json();
    ready["store"].as_str().unwrap_or_default().to_string()
}

/// Checks the users of `cycle` in turn until `/readyz` says `fallback`;
/// panics (with the log) when that takes longer than `within`.
fn until_fallback(floodgate: &Floodgate, cycle: &[String], within: Duration) {
    let start = Instant::now();
    for user in cycle.iter().cycle() {
        source(floodgate, user);
        if store_mode(floodgate) == "fallback" {
            return;
        }
        assert!(
            start.elapsed() < within,
            "the breaker never opened; log:\n{}",
            floodgate.log.lock().unwrap()
        );
    }
}

#[test]
fn a_paused_redis_is_noticed_and_the_fallback_answers() {
    let redis = RedisServer::start();
    let config = format!(
        "{FREE_PORTS}\n[store]\nkind = \"redis\"\n\n[store.redis]\nurl = \"{}\"\nkey_prefix = \"e2e\"\ntimeout = \"50ms\"\n\n[fallback]\nprobe_interval = \"200ms\"\n{POLICY}",
        redis.url()
    );
    let floodgate = Floodgate::start(&config);
    assert_eq!(source(&floodgate, "a"), "redis");

    redis.signal("STOP");
    let users: Vec<String> = (0..10).map(|i| format!("u{i}")).collect();
    until_fallback(&floodgate, &users, Duration::from_secs(10));
    for user in &users {
        assert_eq!(source(&floodgate, user), "fallback");
    }
    redis.signal("CONT");
    let start = Instant::now();
    while store_mode(&floodgate) != "redis" {
        assert!(start.elapsed() < Duration::from_secs(10), "never back");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(source(&floodgate, "a"), "redis");
}

/// One master of three paused: checks on its slots fail, those on the
/// other masters' slots succeed in between — never `failure_threshold`
/// failures in a row — and the error rate opens the breaker.
#[test]
fn one_paused_cluster_node_opens_the_breaker_by_error_rate() {
    let cluster = Cluster::start();
    // Users whose counters live on node 1 (to be paused) and elsewhere, in
    // turn: every failed call is followed by a successful one.
    let owner = |user: &str| cluster.owner(cluster.slot_of(&format!("{{api:{user}}}")));
    let (mut dead, mut alive) = (Vec::new(), Vec::new());
    for i in 0.. {
        let user = format!("u{i}");
        if owner(&user) == 1 {
            dead.push(user);
        } else {
            alive.push(user);
        }
        if dead.len() >= 10 && alive.len() >= 10 {
            break;
        }
    }
    let cycle: Vec<String> = dead
        .iter()
        .zip(&alive)
        .flat_map(|(d, a)| [d.clone(), a.clone()])
        .collect();
    let seeds: Vec<String> = cluster.urls().iter().map(|u| format!("\"{u}\"")).collect();
    let config = format!(
        "{FREE_PORTS}\n[store]\nkind = \"redis\"\n\n[store.redis]\ncluster = [{}]\nkey_prefix = \"e2e\"\ntimeout = \"100ms\"\n\n[fallback]\nprobe_interval = \"200ms\"\nfailure_threshold = 3\n{POLICY}",
        seeds.join(", ")
    );
    let floodgate = Floodgate::start(&config);
    for user in &cycle {
        assert_eq!(source(&floodgate, user), "redis", "{user}");
    }

    cluster.nodes[1].signal("STOP");
    // (Afterwards the probe may find the cluster answering until it marks
    // the node failed: this test asks only that the breaker opens.)
    until_fallback(&floodgate, &cycle, Duration::from_secs(20));
    cluster.nodes[1].signal("CONT");
}
