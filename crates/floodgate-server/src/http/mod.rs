//! The HTTP listener (`server.http`): JSON API, health, metrics.

mod body;
pub mod routes;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::app::App;

/// Serves HTTP on `listener` until `shutdown` fires, then lets open
/// connections finish for at most `grace`.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    max_connections: usize,
    grace: Duration,
    shutdown: CancellationToken,
) {
    crate::accept::serve(
        "http",
        listener,
        max_connections,
        grace,
        shutdown,
        move |req, peer| routes::handle(app.clone(), req, peer),
    )
    .await;
}
