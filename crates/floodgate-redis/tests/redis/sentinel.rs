//! A master found through a Sentinel.

use floodgate_core::AlgorithmKind;
use floodgate_redis::{RedisConfig, RedisStore, RedisTopology};
use floodgate_store::{Store, StoreOp};

use crate::conformance::policy;
use crate::TIMEOUT;
use floodgate_e2e::{wait_until, RedisServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_a_sentinel() {
    let master = RedisServer::start();
    let sentinel = RedisServer::start_sentinel(&master);
    wait_until("the sentinel to know the master", || {
        let addr: Option<Vec<String>> = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg("mymaster")
            .query(&mut sentinel.inspector())
            .ok();
        addr.is_some_and(|a| a.get(1) == Some(&master.port.to_string()))
    });
    let store = RedisStore::connect(&RedisConfig {
        timeout: TIMEOUT,
        ..RedisConfig::new(RedisTopology::Sentinel {
            sentinels: vec![sentinel.url()],
            service_name: "mymaster".into(),
        })
    })
    .await
    .expect("connects through the sentinel");
    let p = policy("fw", AlgorithmKind::FixedWindow, 3, 10_000_000, None);
    let key = p.counter_key(&[("user".to_string(), "s".to_string())].into());
    for left in (0..3).rev() {
        let o = store.check(&[StoreOp::new(&p, &key, 1)]).await.unwrap();
        assert_eq!(o[0].outcome.remaining, left);
    }
    // The counter lives on the master.
    let exists: bool = redis::cmd("EXISTS")
        .arg(store.redis_key(&p, &key))
        .query(&mut master.inspector())
        .unwrap();
    assert!(exists);
}
