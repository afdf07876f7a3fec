//! The Redis store as `floodgate serve` runs it: behind a [`FailoverStore`],
//! with a background probe loop, and a background connect when Redis is
//! unreachable at startup (SPEC §6).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use floodgate_config::store::RedisConfig;
use floodgate_config::Config;
use floodgate_config::Instances;
use floodgate_core::SystemClock;
use floodgate_redis::RedisStore;
use floodgate_store::{FailoverConfig, FailoverStore, LocalStore, RateTrip, Source, Store};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Builds the failover store over `[store.redis]`. Connects once: when Redis
/// is unreachable, starts at once in fallback and keeps connecting in the
/// background every `probe_interval` until it can (or `shutdown` fires).
/// Spawns the probe loop on `tracker`.
///
/// With `fallback.instances = "auto"` (the default) it also spawns the
/// heartbeat: the live count of sidecars, at least `min_instances`, divides
/// `local` fallback limits (`min_instances` until the first heartbeat
/// answers, e.g. while Redis is down at start-up — said in a warning).
///
/// # Errors
/// Problems that retrying cannot fix: bad credentials, ACL, TLS, config.
pub(super) async fn start(
    config: &Config,
    redis: &RedisConfig,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) -> anyhow::Result<Arc<FailoverStore>> {
    let fallback = Arc::new(LocalStore::new(
        config.store.local(),
        Arc::new(SystemClock::new()),
        Source::Fallback,
    ));
    let failover_config = FailoverConfig {
        mode: config.fallback.mode,
        instances: match config.fallback.instances {
            Instances::Fixed(n) => n,
            Instances::Auto => config.fallback.min_instances,
        },
        probe_interval: config.fallback.probe_interval,
        failure_threshold: config.fallback.failure_threshold,
        trip: RateTrip {
            rate: config.fallback.failure_rate,
            window: config.fallback.failure_window,
            min_calls: config.fallback.failure_min_calls,
        },
    };
    // The Redis store once connected, for the heartbeat.
    let connected: Arc<OnceLock<Arc<RedisStore>>> = Arc::default();
    let store = match RedisStore::connect(redis).await {
        Ok(redis) => {
            let primary = primary(redis, &connected);
            Arc::new(FailoverStore::new(Some(primary), fallback, failover_config))
        }
        Err(error) if error.is_transient() => {
            tracing::warn!(
                %error,
                "Redis is unreachable: starting in fallback, connecting in the background"
            );
            if config.fallback.instances == Instances::Auto {
                tracing::warn!(
                    min_instances = config.fallback.min_instances,
                    "instances = \"auto\" with Redis unreachable: the sidecar count is unknown \
                     until Redis answers; local fallback limits are divided by min_instances"
                );
            }
            let store = Arc::new(FailoverStore::new(None, fallback, failover_config));
            tracker.spawn(connect(
                redis.clone(),
                store.clone(),
                connected.clone(),
                shutdown.clone(),
            ));
            store
        }
        Err(error) => return Err(anyhow::Error::new(error)).context("cannot use Redis"),
    };
    tracker.spawn(probe(store.clone(), shutdown.clone()));
    metrics::gauge!(floodgate_core::metric::INSTANCES).set(store.instances() as f64);
    if config.fallback.instances == Instances::Auto {
        let min = config.fallback.min_instances;
        tracker.spawn(heartbeat(connected, store.clone(), min, shutdown.clone()));
    }
    Ok(store)
}

/// The Redis store once connected, kept in `connected` for the heartbeat.
fn primary(redis: RedisStore, connected: &OnceLock<Arc<RedisStore>>) -> Arc<dyn Store> {
    let redis = Arc::new(redis);
    let _ = connected.set(redis.clone());
    redis
}

/// Connects every `probe_interval` until Redis answers, then installs it as
/// the primary. Stops on `shutdown`, or for good on an error retrying cannot
/// fix (logged; floodgate stays in fallback).
async fn connect(
    redis: RedisConfig,
    store: Arc<FailoverStore>,
    connected: Arc<OnceLock<Arc<RedisStore>>>,
    shutdown: CancellationToken,
) {
    let every = store.config().probe_interval;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let attempt = tokio::select! {
            _ = shutdown.cancelled() => return,
            attempt = RedisStore::connect(&redis) => attempt,
        };
        match attempt {
            Ok(redis) => {
                store.install_primary(primary(redis, &connected));
                return;
            }
            Err(error) if error.is_transient() => {
                tracing::debug!(%error, "Redis still unreachable");
            }
            Err(error) => {
                tracing::error!(%error, "cannot use Redis: staying in fallback");
                return;
            }
        }
    }
}

/// Probes the primary every `probe_interval` while the breaker is open
/// (a probe that finds it answering first adds what the fallback admitted
/// to it, then closes the breaker), and while closed sends what the
/// fallback admitted since (failed calls, or Redis down at start-up), until
/// `shutdown`. Checks never wait for either.
async fn probe(store: Arc<FailoverStore>, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(store.config().probe_interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {
                if store.is_open() {
                    store.probe_once().await;
                } else if store.pending_reconcile() > 0 {
                    store.reconcile_once().await;
                }
            }
        }
    }
}

/// What the heartbeat loop needs of the shared store: record this sidecar
/// for `ttl` and answer how many are live (the Redis store; a seam for the
/// loop's tests).
trait Beat: Send + Sync + 'static {
    fn beat(
        &self,
        ttl: Duration,
    ) -> impl std::future::Future<Output = Result<u64, floodgate_store::StoreError>> + Send;
}

impl Beat for RedisStore {
    fn beat(
        &self,
        ttl: Duration,
    ) -> impl std::future::Future<Output = Result<u64, floodgate_store::StoreError>> + Send {
        self.heartbeat(ttl)
    }
}

/// How often each sidecar says it is alive (`instances = "auto"`).
const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);
/// How long one heartbeat counts: three beats, so one lost call does not
/// drop a live sidecar from the count.
const HEARTBEAT_TTL: Duration = Duration::from_secs(6);

/// Every [`HEARTBEAT_EVERY`] while Redis is in use, records this sidecar in
/// Redis and takes the live count as the fallback divisor, until
/// `shutdown` (never fewer than `min_instances`). One call at a time, each bounded by the store's timeout, so
/// a hung Redis cannot pile calls up. While the breaker is open it skips:
/// the count seen last before the outage stays in force.
async fn heartbeat<H: Beat>(
    connected: Arc<OnceLock<Arc<H>>>,
    store: Arc<FailoverStore>,
    min_instances: u64,
    shutdown: CancellationToken,
) {
    let mut every = tokio::time::interval(HEARTBEAT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        let Some(redis) = connected.get() else {
            continue;
        };
        if store.is_open() {
            continue;
        }
        match redis.beat(HEARTBEAT_TTL).await {
            Ok(live) => {
                let live = live.max(min_instances);
                if store.set_instances(live) {
                    metrics::gauge!(floodgate_core::metric::INSTANCES).set(live as f64);
                }
            }
            Err(error) => tracing::debug!(%error, "heartbeat failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use floodgate_core::{FallbackMode, ManualClock, Policy, PolicySpec};
    use floodgate_store::{
        FailoverConfig, LocalConfig, LocalStore, RateTrip, Refund, Source, StoreError, StoreOp,
        StoreOutcome,
    };
    use tonic::async_trait;

    use super::*;

    /// A primary that is down until `up` is set; counts its pings.
    #[derive(Default)]
    struct Flaky {
        up: AtomicBool,
        pings: AtomicUsize,
    }

    #[async_trait]
    impl Store for Flaky {
        async fn check(&self, _: &[StoreOp<'_>]) -> Result<Vec<StoreOutcome>, StoreError> {
            Err(StoreError::Unavailable("down".into()))
        }
        async fn refund(&self, _: &[Refund<'_>]) -> Result<(), StoreError> {
            Ok(())
        }
        fn mode(&self) -> Source {
            Source::Redis
        }
        async fn ping(&self) -> Result<(), StoreError> {
            self.pings.fetch_add(1, Ordering::SeqCst);
            if self.up.load(Ordering::SeqCst) {
                Ok(())
            } else {
                Err(StoreError::Unavailable("down".into()))
            }
        }
    }

    /// A failover store over `primary`, opening at its first failure.
    fn failover(primary: Arc<Flaky>, probe_interval: Duration) -> Arc<FailoverStore> {
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
        let flaky = Arc::new(Flaky::default());
        let store = failover(flaky.clone(), Duration::from_secs(1));
        // One failed check opens the breaker (threshold 1).
        open_breaker(&store).await;

        let shutdown = CancellationToken::new();
        let task = tokio::spawn(probe(store.clone(), shutdown.clone()));
        // Ticks at 0, 1, 2 and 3 s of virtual time: four pings, still open.
        tokio::time::sleep(Duration::from_millis(3_500)).await;
        assert_eq!(flaky.pings.load(Ordering::SeqCst), 4);
        assert!(store.is_open());
        // Redis is back: the next probe closes the breaker, and probing stops.
        flaky.up.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!store.is_open());
        let pings = flaky.pings.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(
            flaky.pings.load(Ordering::SeqCst),
            pings,
            "no probe while closed"
        );
        shutdown.cancel();
        task.await.unwrap();
    }

    /// A shared store whose live count the test sets; counts its beats.
    #[derive(Default)]
    struct Beats {
        live: std::sync::atomic::AtomicU64,
        beats: AtomicUsize,
    }

    impl Beat for Beats {
        async fn beat(&self, _ttl: Duration) -> Result<u64, StoreError> {
            self.beats.fetch_add(1, Ordering::SeqCst);
            Ok(self.live.load(Ordering::SeqCst))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_heartbeat_counts_live_sidecars_never_below_the_minimum_and_skips_while_open() {
        let flaky = Arc::new(Flaky::default());
        flaky.up.store(true, Ordering::SeqCst);
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
        flaky.up.store(false, Ordering::SeqCst);
        open_breaker(&store).await;
        let before = beats.beats.load(Ordering::SeqCst);
        beats.live.store(7, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert_eq!(beats.beats.load(Ordering::SeqCst), before);
        assert_eq!(store.instances(), 2);
        shutdown.cancel();
        task.await.unwrap();
    }
}
