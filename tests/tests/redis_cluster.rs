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
        c.nodes[to]
            .cli(&["HGET", key, "c"])
            .trim()
            .parse()
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
