//! `floodgate serve`: builds the store, the limiter and the listeners from a
//! config, then runs until the shutdown token fires.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use floodgate_config::Config;
use floodgate_core::SystemClock;
use floodgate_store::{DenyCache, LocalStore, Source, Store, DENY_CACHE_ENTRIES};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::accept::ListenerSettings;
use crate::app::App;

mod failover;
mod wake;

/// How often expired local counters are swept and metrics upkept.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for {what} on {addr}"))
}

/// Runs the server for `config` until `shutdown` fires and every task has
/// drained.
///
/// # Errors
/// When a listener cannot be bound or the configured store is not available.
pub async fn run(
    config: Config,
    config_path: std::path::PathBuf,
    shadow: bool,
    metrics: PrometheusHandle,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) -> anyhow::Result<()> {
    let (store, local): (Arc<dyn Store>, Option<Arc<LocalStore>>) = match config.store.redis() {
        None => {
            let local = Arc::new(LocalStore::new(
                config.store.local(),
                Arc::new(SystemClock::new()),
                Source::Local,
            ));
            (local.clone(), Some(local))
        }
        Some(redis) => {
            let failover = failover::start(&config, redis, &shutdown, &tracker).await?;
            let fallback = failover.fallback_store();
            // The deny cache in front: a check it answers alone never
            // reaches the breaker, and it learns only Redis's denials.
            let store: Arc<dyn Store> = if redis.deny_cache {
                Arc::new(DenyCache::new(
                    failover,
                    Arc::new(SystemClock::new()),
                    DENY_CACHE_ENTRIES,
                ))
            } else {
                failover
            };
            (store, Some(fallback))
        }
    };
    let mut app = App::new(&config, shadow, store, metrics.clone());
    app.traces = start_traces(&config, &shutdown, &tracker)?;
    let app = Arc::new(app);
    // Shutdown answers every waiting check at once (denied as usual).
    let (waits, stop) = (app.waits.clone(), shutdown.clone());
    tracker.spawn(async move {
        stop.cancelled().await;
        waits.close();
    });
    if let Some(redis) = config.store.redis() {
        let redis_up = app.limiter.store_mode() == Source::Redis;
        wake::start(
            redis,
            app.waits.clone(),
            app.resets.clone(),
            redis_up,
            &shutdown,
            &tracker,
        )
        .await;
    }
    crate::app::warn_unreleasable(&config.policies);
    // Before the listening line: SIGHUP and file changes from then on reload.
    tracker.spawn(crate::reload::run(
        config_path,
        app.clone(),
        crate::reload::Fixed::of(&config),
        shadow,
        shutdown.clone(),
    ));

    let http = bind(config.server.http, "HTTP").await?;
    let grpc = bind(config.server.grpc, "gRPC").await?;
    let proxy = match &config.server.proxy {
        Some(proxy) => Some((bind(proxy.listen, "the proxy").await?, proxy.clone())),
        None => None,
    };
    let health = match config.server.health {
        Some(addr) => Some(bind(addr, "health").await?),
        None => None,
    };
    let proxy_addr = match &proxy {
        Some((listener, _)) => listener.local_addr()?.to_string(),
        None => "off".to_string(),
    };
    let admin = match config.admin.as_ref().and_then(|a| a.listen) {
        Some(addr) => Some(bind(addr, "the admin API").await?),
        None => None,
    };
    let admin_addr = match (&admin, &config.admin) {
        (Some(listener), _) => listener.local_addr()?.to_string(),
        (None, Some(_)) => "http-listener".to_string(),
        (None, None) => "off".to_string(),
    };
    let health_addr = match &health {
        Some(listener) => listener.local_addr()?.to_string(),
        None => "off".to_string(),
    };
    tracing::info!(
        http = %http.local_addr()?,
        grpc = %grpc.local_addr()?,
        proxy = %proxy_addr,
        health = %health_addr,
        admin = %admin_addr,
        store = app.limiter.store_mode().as_str(),
        policies = config.policies.len(),
        shadow = app.limiter.shadow(),
        "floodgate listening"
    );

    let settings = |what| ListenerSettings {
        what,
        max_connections: config.server.max_connections,
        limits: config.server.limits,
        grace: config.server.shutdown_grace,
    };
    tracker.spawn(crate::http::serve(
        http,
        app.clone(),
        settings("http"),
        shutdown.clone(),
    ));
    if let Some(admin) = admin {
        tracker.spawn(crate::admin::serve(
            admin,
            app.clone(),
            settings("admin"),
            shutdown.clone(),
        ));
    }
    if let Some(health) = health {
        tracker.spawn(crate::http::serve_health(
            health,
            app.clone(),
            settings("health"),
            shutdown.clone(),
        ));
    }
    let grpc_shutdown = shutdown.clone();
    let grpc_app = app.clone();
    let grpc_settings = settings("grpc");
    tracker.spawn(async move {
        let served = crate::grpc::serve(grpc, grpc_app, grpc_settings, grpc_shutdown.clone());
        if let Err(error) = served.await {
            tracing::error!(%error, "gRPC server failed");
            grpc_shutdown.cancel();
        }
    });
    if let Some((listener, proxy)) = proxy {
        let (app, shutdown) = (app.clone(), shutdown.clone());
        let proxy_settings = settings("proxy");
        tracing::info!(upstream = %proxy.upstream, "proxying");
        tracker.spawn(async move {
            let served =
                crate::proxy::serve(listener, app, &proxy, proxy_settings, shutdown.clone());
            if let Err(error) = served.await {
                tracing::error!("{error:#}");
                shutdown.cancel();
            }
        });
    }
    tracker.spawn(sweep(local, metrics, shutdown.clone()));
    Ok(())
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
async fn sweep(
    local: Option<Arc<LocalStore>>,
    metrics: PrometheusHandle,
    shutdown: CancellationToken,
) {
    let mut every = tokio::time::interval(SWEEP_EVERY);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {
                if let Some(store) = local.clone() {
                    // A sweep walks every shard: keep it off the async workers.
                    let _ = tokio::task::spawn_blocking(move || store.sweep()).await;
                }
                metrics.run_upkeep();
            }
        }
    }
}
