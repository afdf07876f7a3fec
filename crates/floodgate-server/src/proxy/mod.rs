//! Reverse proxy mode (`[server] proxy`): floodgate in front of an app that
//! calls nothing itself. Each request is checked; allowed ones go to the
//! upstream with bodies streamed both ways (HTTP/1.1 and h2c clients,
//! WebSocket — or the configured — upgrades tunnelled), denied ones get 429
//! with the rate-limit headers and the check's JSON body. Concurrency leases
//! are released when the response ends, when the client goes away, or at
//! shutdown. Upstream connects, response heads, stalled bodies and idle
//! tunnels all time out (`[server] proxy` settings). Endpoint classes with
//! a `cost` reserve an estimate and settle the cost the response reports
//! (`cost.rs`, `usage.rs`), read as the response streams past.

mod cost;
mod forward;
mod headers;
mod idle_body;
mod leases;
mod sent_body;
mod tunnel;
mod usage;

use std::sync::Arc;

use floodgate_config::server::ProxyConfig;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::accept::ListenerSettings;
use crate::app::App;

/// Serves the proxy on `listener` until `shutdown`, drains for at most
/// `settings.grace`, then releases the leases of requests still open.
///
/// # Errors
/// When the configured upstream is not a usable URL.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    config: &ProxyConfig,
    settings: ListenerSettings,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let leases = leases::Leases::new(app.clone());
    let forwarder = Arc::new(forward::Forwarder::new(
        app,
        &config.upstream,
        &config.limits,
        leases.clone(),
    )?);
    // No time limit: a response may stream for as long as the upstream
    // sends it (the proxy's own timeouts bound each wait).
    crate::accept::serve(settings, listener, shutdown, None, move |req, peer| {
        forwarder.clone().handle(req, peer)
    })
    .await;
    leases.release_all().await;
    Ok(())
}
