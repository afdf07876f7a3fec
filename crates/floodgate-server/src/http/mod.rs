//! The HTTP listener (`server.http`): JSON API, health, metrics; and the
//! optional health listener (`server.health`): health and metrics only.

mod body;
mod routes;

use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Response, StatusCode};
use http_body_util::Full;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::accept::ListenerSettings;
use crate::app::App;

/// The only paths the health listener serves.
pub const HEALTH_PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// Serves the HTTP API on `listener` until `shutdown` fires, then lets
/// open connections finish for at most `settings.grace`.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    settings: ListenerSettings,
    shutdown: CancellationToken,
) {
    crate::accept::serve(settings, listener, shutdown, move |req, peer| {
        routes::handle(app.clone(), req, peer)
    })
    .await;
}

/// Serves `/healthz`, `/readyz` and `/metrics` (exactly as the HTTP API
/// does) and nothing else: 404 for every other path, so probes and
/// scrapers can reach this listener without reaching the check API.
pub async fn serve_health(
    listener: TcpListener,
    app: Arc<App>,
    settings: ListenerSettings,
    shutdown: CancellationToken,
) {
    crate::accept::serve(settings, listener, shutdown, move |req, peer| {
        let app = app.clone();
        async move {
            if HEALTH_PATHS.contains(&req.uri().path()) {
                routes::handle(app, req, peer).await
            } else {
                Ok(not_here(req.method()))
            }
        }
    })
    .await;
}

/// 404 with a JSON body naming what this listener serves.
fn not_here(method: &Method) -> Response<Full<Bytes>> {
    let body = if method == Method::HEAD {
        Bytes::new()
    } else {
        Bytes::from_static(
            br#"{"error":"the health listener serves only /healthz, /readyz and /metrics"}"#,
        )
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = StatusCode::NOT_FOUND;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
