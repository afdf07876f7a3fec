//! The HTTP listener (`server.http`): JSON API, health, metrics; and the
//! optional health listener (`server.health`): health and metrics only.

mod body;

pub use body::read as read_body;
pub mod routes;
mod settle;
mod status_page;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Response, StatusCode};
use http_body_util::Full;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::accept::{ListenerSettings, TimeLimit};
use crate::app::App;
use crate::errors::{error_response, json_response, ApiError};

/// The only paths the health listener serves.
pub const HEALTH_PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// Serves the HTTP API on `listener` until `shutdown` fires, then lets
/// open connections finish for at most `settings.grace`. Each request must
/// be read and answered within `request_timeout`.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    settings: ListenerSettings,
    shutdown: CancellationToken,
) {
    let limit = Some(request_timeout(&settings));
    crate::accept::serve(settings, listener, shutdown, limit, move |req, peer| {
        routes::handle(app.clone(), req, peer)
    })
    .await;
}

/// The HTTP listeners' time limit: a request must be read and answered
/// within `request_timeout`, else it gets 408 and the connection is closed
/// — a client trickling its body holds nothing for long.
pub(crate) fn request_timeout(settings: &ListenerSettings) -> TimeLimit<Full<Bytes>> {
    TimeLimit {
        longest: settings.limits.request_timeout,
        of: |_, longest| longest,
        elapsed: too_slow,
    }
}

/// The answer to a request not complete within `timeout`.
fn too_slow(timeout: Duration) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = error_response(ApiError {
        status: StatusCode::REQUEST_TIMEOUT,
        message: format!("the request was not complete within {timeout:?}"),
    });
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    Ok(response)
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
    let limit = Some(request_timeout(&settings));
    crate::accept::serve(settings, listener, shutdown, limit, move |req, peer| {
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
    let error = ApiError {
        status: StatusCode::NOT_FOUND,
        message: "the health listener serves only /healthz, /readyz and /metrics".into(),
    };
    if method == Method::HEAD {
        return json_response(error.status, Bytes::new());
    }
    error_response(error)
}
