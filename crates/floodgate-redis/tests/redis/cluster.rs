//! A 3-master Cluster: conformance, slot layout, a slot moved under live
//! traffic (ASK, then MOVED), SCRIPT FLUSH on every node, and exact quotas
//! across several stores.

use std::collections::HashSet;
use std::sync::Arc;

use floodgate_core::{AlgorithmKind, Attributes, Policy};
use floodgate_redis::RedisStore;
use floodgate_store::{Store, StoreOp};

use crate::conformance::{self, policy};
use crate::connect_cluster;
use crate::standalone::exact_quota_across_stores;
use floodgate_e2e::Cluster;

const S: u64 = 1_000_000;

fn user(name: &str) -> Attributes {
    [("user".to_string(), name.to_string())].into()
}

async fn remaining_after(store: &RedisStore, policy: &Policy, name: &str, hits: u64) -> u64 {
    let key = policy.counter_key(&user(name));
    let o = store
        .check(&[StoreOp::new(policy, &key, hits)])
        .await
        .expect("check")[0]
        .outcome;
    assert!(o.allowed);
    o.remaining
}

fn evalsha_calls(node: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO").arg("commandstats").query(node).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_evalsha:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_conformance_slots_resharding_and_script_flush() {
    let cluster = Cluster::start();

    let clock = conformance::clock();
    let redis = connect_cluster(cluster.urls())
        .await
        .with_test_clock(clock.clone());
    let local = conformance::local_store(&clock);
    let compared = conformance::run(&local, &redis, &clock, "cluster", 50).await;
    assert!(compared > 250);

    // One key per counter, slotted by its hash tag; users spread over nodes.
    let store = connect_cluster(cluster.urls()).await;
    let p = policy("fw", AlgorithmKind::FixedWindow, 20, 86_400 * S, None);
    let mut inspector = cluster.nodes[0].inspector();
    let mut owners = HashSet::new();
    for i in 0..30 {
        let name = if i == 0 {
            "a}:{b".to_string()
        } else {
            format!("user-{i}")
        };
        remaining_after(&store, &p, &name, 1).await;
        let counter = p.counter_key(&user(&name));
        let key = store.redis_key(&p, &counter);
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(&key)
            .query(&mut inspector)
            .unwrap();
        let tag_slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(&counter)
            .query(&mut inspector)
            .unwrap();
        assert_eq!(slot, tag_slot, "{key} is not slotted by its counter key");
        let owner = cluster.owner(slot);
        let exists: bool = redis::cmd("EXISTS")
            .arg(&key)
            .query(&mut cluster.nodes[owner].inspector())
            .unwrap();
        assert!(exists, "{key} not on the node serving slot {slot}");
        owners.insert(owner);
    }
    assert_eq!(owners.len(), 3, "30 users should spread over the 3 masters");

    // Move the slot of one counter to another master during traffic.
    let counter = p.counter_key(&user("mover"));
    let key = store.redis_key(&p, &counter);
    let mut used = 0;
    for _ in 0..3 {
        used += 1;
        assert_eq!(remaining_after(&store, &p, "mover", 1).await, 20 - used);
    }
    let slot = cluster.slot_of(&key);
    let from = cluster.owner(slot);
    let to = (from + 1) % 3;
    let mut target = cluster.nodes[to].inspector();
    let before = evalsha_calls(&mut target);
    let migration = cluster.begin_migration(slot, to);
    used += 1;
    assert_eq!(
        remaining_after(&store, &p, "mover", 1).await,
        20 - used,
        "while migrating"
    );
    migration.move_keys();
    // The source now answers ASK. fred 10.1 re-sends the command to the
    // slot's cached owner instead of the ASK target, so until the slot is
    // handed over the check fails fast without charging (a transient error
    // the failover store absorbs), and the client must survive it; a fixed
    // fred gets the check right.
    let ops = [StoreOp::new(&p, &counter, 1)];
    match store.check(&ops).await {
        Ok(o) => {
            used += 1;
            assert_eq!(o[0].outcome.remaining, 20 - used, "after MIGRATE (ASK)");
        }
        Err(e) => assert!(e.is_transient(), "{e:?}"),
    }
    migration.finish();
    for _ in 0..3 {
        used += 1;
        assert_eq!(
            remaining_after(&store, &p, "mover", 1).await,
            20 - used,
            "after the move (MOVED)"
        );
    }
    assert!(
        evalsha_calls(&mut target) > before,
        "the new owner serves the counter"
    );
    let ttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut target).unwrap();
    assert!(ttl > 0, "the moved key kept its TTL");

    // SCRIPT FLUSH on every node: checks on every node keep working.
    for node in &cluster.nodes {
        let () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query(&mut node.inspector())
            .unwrap();
    }
    let policies = conformance::policies();
    for i in 0..12 {
        let keys: Vec<String> = policies
            .iter()
            .map(|p| p.counter_key(&user(&format!("flushed-{i}"))))
            .collect();
        let ops = crate::ops(&policies, &keys, 1);
        let outcomes = store
            .check(&ops)
            .await
            .expect("check after SCRIPT FLUSH on every node");
        assert!(outcomes.iter().all(|o| o.outcome.allowed));
    }
    assert_eq!(remaining_after(&store, &p, "mover", 1).await, 20 - used - 1);

    // Exact quotas across three sidecars on the cluster.
    let mut stores = Vec::new();
    for _ in 0..3 {
        stores.push(Arc::new(connect_cluster(cluster.urls()).await));
    }
    exact_quota_across_stores(&stores, "cluster-hammered").await;
}
