//! Admin resets on Redis: every key of a counter goes (each algorithm's
//! shape, leases, lockouts) in one call per counter, on a standalone Redis
//! and on a Cluster; a settle of a reservation charged before the reset
//! gives nothing back to the fresh counter.

use floodgate_core::testing;
use floodgate_core::{AlgorithmKind, Policy};
use floodgate_e2e::{Cluster, RedisServer};
use floodgate_redis::RedisStore;
use floodgate_store::{Clear, Settle, Settled, Store, StoreOp};

use crate::{connect, connect_cluster};

const S: u64 = 1_000_000;

/// A policy of `kind` named `name`: 1 000 per minute.
fn policy(name: &str, kind: AlgorithmKind, settle: bool) -> Policy {
    testing::policy(kind, 1_000, 60 * S)
        .name(name)
        .settle(settle)
        .build()
}

fn key(policy: &Policy) -> String {
    policy.counter_key(&[("user".to_string(), "alice".to_string())].into())
}

async fn remaining(store: &RedisStore, policy: &Policy) -> u64 {
    let key = key(policy);
    let op = StoreOp::new(policy, &key, 0);
    store.check(&[op]).await.unwrap()[0].outcome.remaining
}

async fn clear(store: &RedisStore, policy: &Policy) {
    let key = key(policy);
    let clear = Clear { policy, key: &key };
    store.clear(&[clear]).await.unwrap();
}

/// Fills then resets a counter of every algorithm; each is full again.
async fn every_algorithm_starts_afresh(store: &RedisStore) {
    use AlgorithmKind::*;
    for kind in [
        SlidingWindow,
        FixedWindow,
        SlidingLog,
        TokenBucket,
        Concurrency,
    ] {
        let p = policy(&format!("p-{kind:?}"), kind, false);
        let key = key(&p);
        let op = StoreOp::new(&p, &key, 1_000);
        assert!(store.check(&[op]).await.unwrap()[0].outcome.allowed);
        assert_eq!(remaining(store, &p).await, 0, "{kind:?}");
        clear(store, &p).await;
        assert_eq!(
            remaining(store, &p).await,
            1_000,
            "{kind:?} after the reset"
        );
    }
}

/// A reservation charged before a reset, settled after it with a refund:
/// the fresh counter gets nothing back.
async fn a_settle_after_a_reset_refunds_nothing(store: &RedisStore) {
    use AlgorithmKind::*;
    for kind in [SlidingWindow, FixedWindow, TokenBucket] {
        let p = policy(&format!("s-{kind:?}"), kind, true);
        let key = key(&p);
        let reserve = |nonce| StoreOp {
            reserve: Some(nonce),
            ..StoreOp::new(&p, &key, 500)
        };
        let first = store.check(&[reserve(1)]).await.unwrap()[0].outcome;
        clear(store, &p).await;
        assert!(store.check(&[reserve(2)]).await.unwrap()[0].outcome.allowed);
        let settle = Settle {
            policy: &p,
            key: &key,
            nonce: 1,
            issued_us: first.receipt.unwrap().at_us,
            actual: 0,
        };
        assert_eq!(
            store.settle(&[settle]).await.unwrap(),
            vec![Settled::Applied { estimate: 500 }]
        );
        assert!(
            remaining(store, &p).await <= 500,
            "{kind:?}: the reset charge was refunded into the fresh counter"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_clears_every_key_of_the_counter() {
    let server = RedisServer::start();
    let store = connect(server.url()).await;
    let mut inspector = server.inspector();
    every_algorithm_starts_afresh(&store).await;
    a_settle_after_a_reset_refunds_nothing(&store).await;
    // A lockout key under the counter's tag goes too.
    let p = policy("locked", AlgorithmKind::FixedWindow, false);
    let block = format!("{}:block", store.redis_key(&p, &key(&p)));
    let _: () = redis::cmd("SET")
        .arg(&block)
        .arg("1")
        .query(&mut inspector)
        .unwrap();
    clear(&store, &p).await;
    let exists: i64 = redis::cmd("EXISTS")
        .arg(&block)
        .query(&mut inspector)
        .unwrap();
    assert_eq!(exists, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_on_a_cluster() {
    let cluster = Cluster::start();
    let store = connect_cluster(cluster.urls()).await;
    every_algorithm_starts_afresh(&store).await;
    a_settle_after_a_reset_refunds_nothing(&store).await;
}
