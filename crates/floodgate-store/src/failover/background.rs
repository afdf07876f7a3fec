//! The failover store's background work, in the order it happens:
//!
//! 1. [`start`] connects to the primary once. Reached, it is the primary
//!    and the breaker starts closed; unreachable (a transient error), the
//!    store starts open and the **connect** loop tries again every
//!    `probe_interval` until it can, then installs it; any other error
//!    (credentials, TLS, settings) fails start-up.
//! 2. The **probe** loop, every `probe_interval`: while the breaker is
//!    open, [`FailoverStore::probe_once`] (which closes it once the
//!    primary answers); while closed, [`FailoverStore::reconcile_once`]
//!    while the fallback's charges wait.
//! 3. The **heartbeat** loop (`count_instances`), every
//!    [`HEARTBEAT_EVERY`] while connected and closed: records this sidecar
//!    in the shared store and takes the live count, never below the
//!    configured minimum, as the divisor of `local` fallback limits.
//!
//! Every loop stops when the shutdown token fires; none holds up a check.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{FailoverSettings, FailoverStore};
use crate::{LocalStore, Source, Store, StoreError};

/// How often each sidecar says it is alive (`count_instances`).
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);
/// How long one heartbeat counts: three beats, so one lost call does not
/// drop a live sidecar from the count.
pub const HEARTBEAT_TTL: Duration = Duration::from_secs(6);

/// What the heartbeat loop needs of the shared store: record this sidecar
/// for `ttl` and answer how many are live (the Redis store; a seam for the
/// loop's tests).
pub trait Heartbeat: Send + Sync + 'static {
    /// Records this sidecar as live for `ttl`; returns the live count.
    ///
    /// # Errors
    /// The store's error when the call fails.
    fn heartbeat(&self, ttl: Duration) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// How to reach the shared store (the Redis store implements it): one
/// connection attempt per call.
pub trait Connect: Send + Sync + 'static {
    /// The store once connected.
    type Primary: Store + Heartbeat;
    /// Why an attempt failed.
    type Error: std::error::Error + Send + Sync + 'static;

    /// One attempt to connect.
    ///
    /// # Errors
    /// [`Connect::Error`]; [`Connect::is_transient`] says whether to retry.
    fn connect(&self) -> impl Future<Output = Result<Self::Primary, Self::Error>> + Send;

    /// Whether a later attempt may succeed (unreachable), or not
    /// (credentials, TLS, settings).
    fn is_transient(error: &Self::Error) -> bool;
}

/// The failover store over the primary `connector` reaches, with its
/// loops spawned on `tracker` (see the module doc).
///
/// # Errors
/// A connection error that retrying cannot fix.
pub async fn start<C: Connect>(
    connector: C,
    settings: FailoverSettings,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) -> Result<Arc<FailoverStore>, C::Error> {
    let fallback = Arc::new(LocalStore::new(
        settings.local,
        Arc::new(floodgate_core::SystemClock::new()),
        Source::Fallback,
    ));
    // The primary once connected, for the heartbeat.
    let connected: Arc<OnceLock<Arc<C::Primary>>> = Arc::default();
    let store = match connector.connect().await {
        Ok(primary) => {
            let primary = keep(primary, &connected);
            Arc::new(FailoverStore::new(Some(primary), fallback, settings.config))
        }
        Err(error) if C::is_transient(&error) => {
            warn_unreachable(&error, &settings);
            let store = Arc::new(FailoverStore::new(None, fallback, settings.config));
            let (store_, connected_) = (store.clone(), connected.clone());
            tracker.spawn(connect(connector, store_, connected_, shutdown.clone()));
            store
        }
        Err(error) => return Err(error),
    };
    tracker.spawn(probe(store.clone(), shutdown.clone()));
    metrics::gauge!(floodgate_core::metric::INSTANCES).set(store.instances() as f64);
    if settings.count_instances {
        let min = settings.config.instances;
        tracker.spawn(heartbeat(connected, store.clone(), min, shutdown.clone()));
    }
    Ok(store)
}

fn warn_unreachable(error: &dyn std::error::Error, settings: &FailoverSettings) {
    tracing::warn!(
        %error,
        "Redis is unreachable: starting in fallback, connecting in the background"
    );
    if settings.count_instances {
        tracing::warn!(
            min_instances = settings.config.instances,
            "instances = \"auto\" with Redis unreachable: the sidecar count is unknown \
             until Redis answers; local fallback limits are divided by min_instances"
        );
    }
}

/// The primary once connected, kept in `connected` for the heartbeat.
fn keep<P: Store + Heartbeat>(primary: P, connected: &OnceLock<Arc<P>>) -> Arc<dyn Store> {
    let primary = Arc::new(primary);
    let _ = connected.set(primary.clone());
    primary
}

/// Connects every `probe_interval` until the primary answers, then
/// installs it. Stops on `shutdown`, or for good on an error retrying
/// cannot fix (logged; the store stays in fallback).
async fn connect<C: Connect>(
    connector: C,
    store: Arc<FailoverStore>,
    connected: Arc<OnceLock<Arc<C::Primary>>>,
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
            attempt = connector.connect() => attempt,
        };
        match attempt {
            Ok(primary) => {
                store.install_primary(keep(primary, &connected));
                return;
            }
            Err(error) if C::is_transient(&error) => {
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
pub(super) async fn probe(store: Arc<FailoverStore>, shutdown: CancellationToken) {
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

/// Every [`HEARTBEAT_EVERY`] while the primary is connected, records this
/// sidecar in it and takes the live count as the fallback divisor, until
/// `shutdown` (never fewer than `min_instances`). One call at a time, each
/// bounded by the store's timeout, so a hung primary cannot pile calls up.
/// While the breaker is open it skips: the count seen last before the
/// outage stays in force.
pub(super) async fn heartbeat<H: Heartbeat>(
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
        let Some(primary) = connected.get() else {
            continue;
        };
        if store.is_open() {
            continue;
        }
        match primary.heartbeat(HEARTBEAT_TTL).await {
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
mod tests;
