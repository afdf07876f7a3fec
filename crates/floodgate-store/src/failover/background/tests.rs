//! The loops on tokio's paused clock: exact virtual times, no sleeps.

use std::sync::atomic::{AtomicUsize, Ordering};

use floodgate_core::{FallbackMode, ManualClock, Policy, PolicySpec};

use super::*;
use crate::testing::FakeStore;
use crate::{FailoverConfig, LocalConfig, RateTrip, StoreOp};

/// A failover store over `primary`, opening at its first failure.
fn failover(primary: Arc<FakeStore>, probe_interval: Duration) -> Arc<FailoverStore> {
    let fallback = Arc::new(LocalStore::new(
        LocalConfig::default(),
        Arc::new(ManualClock::new(1_700_000_000_000_000)),
        Source::Fallback,
    ));
    Arc::new(FailoverStore::new(
        Some(primary),
        fallback,
        FailoverConfig {
            mode: FallbackMode::Local,
            instances: 1,
            probe_interval,
            failure_threshold: 1,
            trip: RateTrip::default(),
        },
    ))
}

/// One check the (down) primary fails opens the breaker; the fallback
/// answers it.
async fn open_breaker(store: &FailoverStore) {
    let policy = Policy::new(PolicySpec {
        name: "p".into(),
        key: vec!["user".into()],
        limit: 10,
        window_us: Some(60_000_000),
        ..PolicySpec::default()
    })
    .unwrap();
    let op = StoreOp {
        policy: &policy,
        key: "p:u",
        hits: 1,
        enforced: true,
        charge: true,
        reserve: None,
    };
    let answered = store.check(&[op]).await.unwrap();
    assert_eq!(answered[0].source, Source::Fallback);
    assert!(store.is_open());
}

#[tokio::test(start_paused = true)]
async fn the_probe_loop_pings_every_interval_while_open_and_closes_once_the_primary_answers() {
    let flaky = Arc::new(FakeStore::allowing());
    flaky.down();
    let store = failover(flaky.clone(), Duration::from_secs(1));
    // One failed check opens the breaker (threshold 1).
    open_breaker(&store).await;

    let shutdown = CancellationToken::new();
    let task = tokio::spawn(probe(store.clone(), shutdown.clone()));
    // Ticks at 0, 1, 2 and 3 s of virtual time: four pings, still open.
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    assert_eq!(flaky.pings(), 4);
    assert!(store.is_open());
    // Redis is back: the next probe closes the breaker, and probing stops.
    flaky.up();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!store.is_open());
    let pings = flaky.pings();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(flaky.pings(), pings, "no probe while closed");
    shutdown.cancel();
    task.await.unwrap();
}

/// A shared store whose live count the test sets; counts its beats.
#[derive(Default)]
struct Beats {
    live: std::sync::atomic::AtomicU64,
    beats: AtomicUsize,
}

impl Heartbeat for Beats {
    async fn heartbeat(&self, _ttl: Duration) -> Result<u64, StoreError> {
        self.beats.fetch_add(1, Ordering::SeqCst);
        Ok(self.live.load(Ordering::SeqCst))
    }
}

#[tokio::test(start_paused = true)]
async fn the_heartbeat_counts_live_sidecars_never_below_the_minimum_and_skips_while_open() {
    let flaky = Arc::new(FakeStore::allowing());
    let store = failover(flaky.clone(), Duration::from_secs(60));
    let beats = Arc::new(Beats::default());
    beats.live.store(3, Ordering::SeqCst);
    let connected = Arc::new(OnceLock::new());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(heartbeat(
        connected.clone(),
        store.clone(),
        2,
        shutdown.clone(),
    ));
    // Not connected yet: no beat.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(beats.beats.load(Ordering::SeqCst), 0);
    assert!(connected.set(beats.clone()).is_ok());
    // Ticks every 2 s: at 4 and 6 s.
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    assert_eq!(beats.beats.load(Ordering::SeqCst), 2);
    assert_eq!(store.instances(), 3);
    // One sidecar left: the count never goes below min_instances (2).
    beats.live.store(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(store.instances(), 2);
    // While the breaker is open the count seen last stays, and no beat.
    flaky.down();
    open_breaker(&store).await;
    let before = beats.beats.load(Ordering::SeqCst);
    beats.live.store(7, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(beats.beats.load(Ordering::SeqCst), before);
    assert_eq!(store.instances(), 2);
    shutdown.cancel();
    task.await.unwrap();
}
