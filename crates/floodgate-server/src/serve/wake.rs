//! The Redis wake-up channel as `floodgate serve` runs it: connected in
//! the background (retrying while Redis is unreachable), so a release on
//! any sidecar wakes the checks waiting here.

use std::sync::Arc;
use std::time::Duration;

use floodgate_config::store::RedisConfig;
use floodgate_redis::connect_wake_channel;
use floodgate_store::WaitRoom;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long to wait between attempts to connect the channel.
const RETRY: Duration = Duration::from_secs(1);

/// Connects the wake-up channel of `room` over `[store.redis]` in the
/// background, until connected or `shutdown` fires. Until it is, waiters
/// here learn of releases elsewhere by polling.
pub(super) fn start(
    redis: &RedisConfig,
    room: Arc<WaitRoom>,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) {
    let config = super::failover::redis_config(redis);
    let shutdown = shutdown.clone();
    tracker.spawn(async move {
        loop {
            let stop = shutdown.clone();
            let connected =
                connect_wake_channel(&config, room.clone(), async move { stop.cancelled().await });
            let error = tokio::select! {
                () = shutdown.cancelled() => return,
                result = connected => match result {
                    Ok(()) => return,
                    Err(error) => error,
                },
            };
            tracing::warn!(%error, "wake-up channel not connected: waiters poll; retrying");
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(RETRY) => {}
            }
        }
    });
}
