//! Three real `floodgate` processes on a real 3-master Redis Cluster: the
//! limit is global and exact, and checks keep being answered while the
//! counter's slot moves to another master.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use floodgate_e2e::{Cluster, Floodgate, FREE_PORTS};

fn config(cluster: &Cluster, algorithm: &str, limit: u64) -> String {
    let seeds: Vec<String> = cluster.urls().iter().map(|u| format!("\"{u}\"")).collect();
    format!(
        "{FREE_PORTS}\n[store]\nkind = \"redis\"\n\n[store.redis]\ncluster = [{}]\nkey_prefix = \"e2e\"\ntimeout = \"500ms\"\n\n[[policy]]\nname = \"shared\"\nkey = [\"user\"]\nlimit = {limit}\nwindow = \"1m\"\nalgorithm = \"{algorithm}\"\n",
        seeds.join(", ")
    )
}

/// Sends `per_worker` checks for `user` from each of 6 threads, spread over
/// the sidecars; every answer must be 200 or 429. Returns the allowed
/// checks' sources.
fn hammer(sidecars: &[Floodgate], user: &str, per_worker: usize) -> Vec<String> {
    let sources = Arc::new(Mutex::new(Vec::new()));
    let body = format!(r#"{{"attributes": {{"user": "{user}"}}}}"#);
    std::thread::scope(|scope| {
        for worker in 0..6 {
            let (sources, body) = (sources.clone(), &body);
            scope.spawn(move || {
                for i in 0..per_worker {
                    let r = sidecars[(worker + i) % sidecars.len()].check(body);
                    assert!(r.status == 200 || r.status == 429, "{}", r.text());
                    if r.status == 200 {
                        let source = r.json()["statuses"][0]["source"].to_string();
                        sources.lock().unwrap().push(source);
                    }
                }
            });
        }
    });
    let sources = sources.lock().unwrap().clone();
    sources
}

#[test]
fn three_sidecars_on_a_cluster_admit_exactly_the_quota() {
    let cluster = Cluster::start();
    for algorithm in ["sliding_log", "fixed_window", "token_bucket"] {
        let sidecars: Vec<Floodgate> = (0..3)
            .map(|_| Floodgate::start(&config(&cluster, algorithm, 100)))
            .collect();
        assert_eq!(
            sidecars[0].http("GET", "/readyz", None).json()["store"],
            "redis"
        );
        let sources = hammer(&sidecars, &format!("hot-{algorithm}"), 50);
        assert_eq!(sources.len(), 100, "{algorithm}");
        assert!(sources.iter().all(|s| s == "\"redis\""), "{sources:?}");
    }
    // Different users' counters spread over the masters.
    let mut owners = std::collections::HashSet::new();
    for node in 0..3 {
        let keys = cluster.nodes[node].cli(&["--scan", "--pattern", "e2e:*"]);
        if !keys.trim().is_empty() {
            owners.insert(node);
        }
    }
    assert!(owners.len() >= 2, "three hot keys all on one master");
}

#[test]
fn checks_keep_answering_while_the_counter_slot_moves() {
    let cluster = Cluster::start();
    let sidecars: Vec<Floodgate> = (0..3)
        .map(|_| Floodgate::start(&config(&cluster, "fixed_window", 1_000_000)))
        .collect();
    let first = sidecars[0].check(r#"{"attributes": {"user": "mover"}}"#);
    assert_eq!(first.status, 200);
    let key = (0..3)
        .map(|n| cluster.nodes[n].cli(&["--scan", "--pattern", "e2e:*mover*"]))
        .collect::<String>();
    let key = key.trim();
    assert!(key.starts_with("e2e:{shared:mover}:"), "{key:?}");
    let slot = cluster.slot_of(key);
    let from = cluster.owner(slot);
    assert_eq!(cluster.nodes[from].cli(&["EXISTS", key]).trim(), "1");

    // Checks flow from 6 threads while the slot moves (ASK, then MOVED).
    let moved = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let load = scope.spawn(|| hammer(&sidecars, "mover", 60));
        cluster.migrate_slot(slot, (from + 1) % 3);
        moved.store(1, Ordering::SeqCst);
        let sources = load.join().unwrap();
        assert_eq!(sources.len(), 360, "a limit of 1 000 000 allows all");
        let fallback = sources.iter().filter(|s| *s != "\"redis\"").count();
        eprintln!("during the move: {fallback} of 360 checks answered by the fallback");
    });
    assert_eq!(moved.load(Ordering::SeqCst), 1);
    let to = cluster.owner(slot);
    assert_ne!(to, from);
    assert_eq!(cluster.nodes[to].cli(&["EXISTS", key]).trim(), "1");

    // After the move every sidecar is back on Redis (a check the old owner
    // answered with ASK may have been decided by the fallback meanwhile),
    // and the moved counter keeps counting on its new master.
    floodgate_e2e::wait_until("every sidecar back on Redis", || {
        sidecars
            .iter()
            .all(|s| s.http("GET", "/readyz", None).json()["store"] == "redis")
    });
    let count = |c: &Cluster| -> u64 {
        // The counter's string ends with its hits in the current window.
        c.nodes[to]
            .cli(&["GET", key])
            .trim()
            .rsplit(':')
            .next()
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    };
    let before = count(&cluster);
    for sidecar in &sidecars {
        let r = sidecar.check(r#"{"attributes": {"user": "mover"}}"#);
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["statuses"][0]["source"], "redis", "{}", r.text());
    }
    assert_eq!(count(&cluster), before + 3, "the new master counts");
}

/// What losing one master (no replicas) does, as observed with fred 10
/// (SIGSTOP: the node hangs; a SIGKILLed node behaves the same for the
/// sidecar, which trips at once since the connection is refused):
/// its cluster connection stalls every command while it reconnects to the
/// lost node, so the sidecar trips to fallback for all keys — not only the
/// lost master's — and every check is still answered. While the node is
/// away, probes fail and the sidecar stays in fallback; when it answers
/// again the sidecar returns to Redis by itself.
#[test]
fn losing_one_master_trips_to_fallback_and_recovers() {
    let cluster = Cluster::start();
    let config = config(&cluster, "fixed_window", 1_000_000).replace(
        "timeout = \"500ms\"",
        "timeout = \"100ms\"\n\n[fallback]\nprobe_interval = \"200ms\"\nfailure_threshold = 2",
    );
    let sidecar = Floodgate::start(&config);
    // One user whose counter lives on each master.
    let mut users: Vec<Option<String>> = vec![None; 3];
    for i in 0..200 {
        let user = format!("u{i}");
        let slot = cluster.slot_of(&format!("e2e:{{shared:{user}}}:fw"));
        users[cluster.owner(slot)].get_or_insert(user);
    }
    let users: Vec<String> = users.into_iter().map(Option::unwrap).collect();
    let check = |user: &str| -> String {
        let r = sidecar.check(&format!(r#"{{"attributes": {{"user": "{user}"}}}}"#));
        assert!(r.status == 200 || r.status == 429, "{}", r.text());
        r.json()["statuses"][0]["source"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let store = || sidecar.http("GET", "/readyz", None).json()["store"].clone();
    for user in &users {
        assert_eq!(check(user), "redis");
    }

    cluster.nodes[2].signal("STOP");
    floodgate_e2e::wait_until("the sidecar to trip to fallback", || {
        users.iter().for_each(|u| {
            check(u);
        });
        store() == "fallback"
    });
    // Keys on the surviving masters are answered by the fallback too.
    for user in &users {
        assert_eq!(check(user), "fallback", "{user}");
    }

    cluster.nodes[2].signal("CONT");
    let resumed = std::time::Instant::now();
    // Back on Redis for every master's keys once the cluster says
    // `cluster_state:ok` again — Redis clears a replica-less master's FAIL
    // flag only about 2 × cluster-node-timeout (here 5 s) after it answers,
    // so allow 30 s. The probe waits for that state instead of flapping.
    let back = loop {
        if users.iter().all(|u| check(u) == "redis") && store() == "redis" {
            break resumed.elapsed();
        }
        assert!(
            resumed.elapsed() < std::time::Duration::from_secs(30),
            "not back on Redis; log:\n{}",
            sidecar.log.lock().unwrap()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let log = sidecar.log.lock().unwrap().clone();
    let switches = log.matches("switching to fallback").count();
    eprintln!("back on Redis {back:?} after SIGCONT; {switches} switch(es) to fallback in all");
}
