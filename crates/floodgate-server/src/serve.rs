//! `floodgate serve`: builds the store, the limiter and the listeners from a
//! config, then runs until the shutdown token fires.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use floodgate_config::Config;
use floodgate_core::SystemClock;
use floodgate_redis::RedisConnector;
use floodgate_store::{DenyCache, LocalStore, Source, Store, DENY_CACHE_ENTRIES};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::App;
use listeners::Listeners;

mod listeners;
mod wake;

/// How often expired local counters are swept and metrics upkept.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// What `floodgate serve` was started with, besides the config.
pub struct Startup {
    /// The config file, re-read on SIGHUP or change.
    pub config_path: PathBuf,
    /// `--shadow`: every policy in shadow mode whatever the file says.
    pub shadow: bool,
    /// The Prometheus recorder (rendered at `/metrics`, upkept by the sweep).
    pub metrics: PrometheusHandle,
}

/// Runs the server for `config` until `shutdown` fires and every task has
/// drained: builds the stores, then the app, starts the background tasks,
/// and binds and serves the listeners.
///
/// # Errors
/// When a listener cannot be bound or the configured store is not available.
pub async fn run(
    config: Config,
    startup: Startup,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) -> anyhow::Result<()> {
    let stores = build_stores(&config, &shutdown, &tracker).await?;
    let app = build_app(&config, &startup, stores.store, &shutdown, &tracker)?;
    if let Some(redis) = config.store.redis() {
        let redis_up = app.limiter.store_mode() == Source::Redis;
        let (waits, resets) = (app.waits.clone(), app.resets.clone());
        wake::start(redis, waits, resets, redis_up, &shutdown, &tracker).await;
    }
    crate::app::warn_unreleasable(&config.policies);
    // Before the listening line: SIGHUP and file changes from then on reload.
    tracker.spawn(crate::reload::run(
        startup.config_path,
        app.clone(),
        crate::reload::Fixed::of(&config),
        startup.shadow,
        shutdown.clone(),
    ));
    let listeners = Listeners::bind(&config).await?;
    listeners.announce(&config, &app)?;
    listeners.serve(&config, &app, &shutdown, &tracker);
    tracker.spawn(sweep(stores.local, startup.metrics, shutdown.clone()));
    Ok(())
}

/// The stores `serve` checks against.
struct Stores {
    /// What the limiter calls.
    store: Arc<dyn Store>,
    /// The local store to sweep: the store itself, or Redis's fallback.
    local: Arc<LocalStore>,
}

/// The local store, or Redis behind its failover store (and the deny
/// cache when on), as `[store]` says.
async fn build_stores(
    config: &Config,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) -> anyhow::Result<Stores> {
    let Some(redis) = config.store.redis() else {
        let local = Arc::new(LocalStore::new(
            config.store.local(),
            Arc::new(SystemClock::new()),
            Source::Local,
        ));
        return Ok(Stores {
            store: local.clone(),
            local,
        });
    };
    let connector = RedisConnector::new(redis.clone());
    let settings = config.fallback.failover(config.store.local());
    let failover = floodgate_store::start_failover(connector, settings, shutdown, tracker)
        .await
        .context("cannot use Redis")?;
    let local = failover.fallback_store();
    // The deny cache in front: a check it answers alone never reaches the
    // breaker, and it learns only Redis's denials.
    let store: Arc<dyn Store> = if redis.deny_cache {
        let clock = Arc::new(SystemClock::new());
        Arc::new(DenyCache::new(failover, clock, DENY_CACHE_ENTRIES))
    } else {
        failover
    };
    Ok(Stores { store, local })
}

/// The shared state of every transport, with its span exporter; waiting
/// checks are answered at once on shutdown (denied as usual).
fn build_app(
    config: &Config,
    startup: &Startup,
    store: Arc<dyn Store>,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) -> anyhow::Result<Arc<App>> {
    let mut app = App::new(config, startup.shadow, store, startup.metrics.clone());
    app.traces = start_traces(config, shutdown, tracker)?;
    let app = Arc::new(app);
    let (waits, stop) = (app.waits.clone(), shutdown.clone());
    tracker.spawn(async move {
        stop.cancelled().await;
        waits.close();
    });
    Ok(app)
}

/// Starts the span exporter when `[traces]` or the `OTEL_*` environment
/// variables name a collector.
fn start_traces(
    config: &Config,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) -> anyhow::Result<Option<Arc<crate::traces::Tracer>>> {
    use crate::traces::{export::Exporter, TraceSettings, Tracer};
    let settings = TraceSettings::resolve(config.traces.as_ref(), &|name| std::env::var(name).ok())
        .map_err(|e| anyhow::anyhow!("tracing: {e}"))?;
    Ok(settings.map(|settings| {
        tracing::info!(endpoint = %settings.endpoint, protocol = settings.protocol.as_str(), sample_ratio = settings.sample_ratio, "exporting spans of checks over OTLP");
        let exporter = Exporter::start(&settings, shutdown.clone(), tracker);
        Arc::new(Tracer::new(&settings, exporter))
    }))
}

/// Sweeps expired local counters and runs metrics upkeep until shutdown.
async fn sweep(local: Arc<LocalStore>, metrics: PrometheusHandle, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(SWEEP_EVERY);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {
                // A sweep walks every shard: keep it off the async workers.
                let store = local.clone();
                let _ = tokio::task::spawn_blocking(move || store.sweep()).await;
                metrics.run_upkeep();
            }
        }
    }
}
