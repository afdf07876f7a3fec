//! The Redis wake-up channel as `floodgate serve` runs it: connected in
//! the background (retrying while Redis is unreachable), so a release on
//! any sidecar wakes the checks waiting here.

use std::sync::Arc;
use std::time::Duration;

use floodgate_config::store::RedisConfig;
use floodgate_redis::connect_wake_channel;
use floodgate_store::{Resets, WaitRoom};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long to wait between attempts to connect the channel.
const RETRY: Duration = Duration::from_secs(1);

/// How long start-up waits for the first attempt before the listeners
/// open: checks that wait from the first request on then keep their order
/// across sidecars.
const FIRST_ATTEMPT: Duration = Duration::from_secs(3);

/// Connects the wake-up channel of `room` over `[store.redis]`: when
/// `redis_up` (the store reached Redis at start-up) waits for the first
/// attempt (at most [`FIRST_ATTEMPT`]), then keeps trying in the
/// background until connected or `shutdown` fires. Until it is, waiters
/// here keep their order within this sidecar only and learn of releases
/// elsewhere by polling.
pub(super) async fn start(
    redis: &RedisConfig,
    room: Arc<WaitRoom>,
    resets: Arc<Resets>,
    redis_up: bool,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) {
    let config = redis.clone();
    let shutdown = shutdown.clone();
    let (tried, first) = tokio::sync::oneshot::channel::<()>();
    let mut tried = Some(tried);
    tracker.spawn(async move {
        loop {
            let stop = shutdown.clone();
            let connected =
                connect_wake_channel(&config, room.clone(), resets.clone(), async move {
                    stop.cancelled().await
                });
            let error = tokio::select! {
                () = shutdown.cancelled() => return,
                result = connected => match result {
                    Ok(()) => {
                        if let Some(tried) = tried.take() {
                            let _ = tried.send(());
                        }
                        return;
                    }
                    Err(error) => error,
                },
            };
            if let Some(tried) = tried.take() {
                let _ = tried.send(());
            }
            tracing::warn!(%error, "wake-up channel not connected: waiters poll; retrying");
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(RETRY) => {}
            }
        }
    });
    if redis_up {
        let _ = tokio::time::timeout(FIRST_ATTEMPT, first).await;
    }
}
