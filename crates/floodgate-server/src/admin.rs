//! The admin API (`[admin]`): the state of a key, its reset, and the keys
//! denied most, behind a bearer token. Served under `/v1/admin/` on the
//! HTTP listener, or on a listener of its own (`[admin] listen`); 404
//! without the section. Every request is logged (who: the peer address;
//! what: the action and policy names — attribute values at debug level
//! only) and counted in `floodgate_admin_requests_total{action, result}`.

mod handlers;
mod query;

pub mod cli;
pub mod command;

use std::net::SocketAddr;
use std::sync::Arc;

use floodgate_config::AdminConfig;
use http::{header, HeaderValue, Method, StatusCode};
use hyper::body::Incoming;
use hyper::Request;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::accept::ListenerSettings;
use crate::app::App;
use crate::errors::ApiError;
use crate::http::routes::{error_response, HttpResponse};

/// Where the admin routes live.
pub const PREFIX: &str = "/v1/admin/";

/// The admin actions, as logged and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    State,
    Reset,
    Top,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::State => "state",
            Action::Reset => "reset",
            Action::Top => "top",
        }
    }

    /// The action at `path`, and the method it takes.
    fn of(path: &str) -> Option<(Action, Method)> {
        match path.strip_prefix(PREFIX)? {
            "state" => Some((Action::State, Method::GET)),
            "reset" => Some((Action::Reset, Method::POST)),
            "top" => Some((Action::Top, Method::GET)),
            _ => None,
        }
    }
}

/// Whether `given` equals `expected`, in time that depends only on the
/// length of `given` (never on where they differ).
fn same(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != expected.len());
    for (i, g) in given.iter().enumerate() {
        diff |= g ^ expected.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

/// Whether `req` carries `Authorization: Bearer <the token>`.
fn authorized(req: &Request<Incoming>, admin: &AdminConfig) -> bool {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return false;
    };
    let bytes = value.as_bytes();
    let Some(token) = bytes
        .get(..7)
        .filter(|scheme| scheme.eq_ignore_ascii_case(b"bearer "))
        .map(|_| bytes[7..].trim_ascii())
    else {
        return false;
    };
    same(token, admin.token.as_bytes())
}

fn count(action: Action, result: &'static str) {
    metrics::counter!(
        floodgate_core::metric::ADMIN_REQUESTS_TOTAL,
        "action" => action.as_str(),
        "result" => result
    )
    .increment(1);
}

/// Answers one request under [`PREFIX`] (the caller checked the path),
/// given the admin settings in force (`None`: the API is off here: 404).
pub async fn handle(
    app: &App,
    admin: Option<&AdminConfig>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> HttpResponse {
    let path = req.uri().path().to_string();
    let (Some(admin), Some((action, method))) = (admin, Action::of(&path)) else {
        return error_response(ApiError {
            status: StatusCode::NOT_FOUND,
            message: format!("no route for {path}"),
        });
    };
    if !authorized(&req, admin) {
        count(action, "unauthorized");
        tracing::warn!(%peer, action = action.as_str(), "admin request refused: missing or wrong bearer token");
        let mut response = error_response(ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: "the admin API needs Authorization: Bearer <token> with the token of [admin]"
                .into(),
        });
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    if req.method() != method {
        count(action, "invalid");
        let mut response = error_response(ApiError {
            status: StatusCode::METHOD_NOT_ALLOWED,
            message: format!("method not allowed; use {method}"),
        });
        let allow = HeaderValue::from_static(if method == Method::GET { "GET" } else { "POST" });
        response.headers_mut().insert(header::ALLOW, allow);
        return response;
    }
    let answer = match action {
        Action::State => handlers::state(app, &req, peer).await,
        Action::Reset => handlers::reset(app, req, peer).await,
        Action::Top => handlers::top(app, &req, peer),
    };
    let result = match &answer {
        Ok(_) => "ok",
        Err(e) if e.status.is_client_error() => "invalid",
        Err(_) => "error",
    };
    count(action, result);
    match answer {
        Ok(response) => response,
        Err(error) => {
            tracing::info!(%peer, action = action.as_str(), status = error.status.as_u16(), error = %error.message, "admin request failed");
            error_response(error)
        }
    }
}

/// Serves only the admin routes on `listener` (`[admin] listen`) until
/// `shutdown` fires.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    settings: ListenerSettings,
    shutdown: CancellationToken,
) {
    let limit = Some(crate::http::request_timeout(&settings));
    crate::accept::serve(settings, listener, shutdown, limit, move |req, peer| {
        let app = app.clone();
        async move {
            let settings = app.settings.load();
            let admin = settings.admin.as_ref().filter(|a| a.listen.is_some());
            let admin = if req.uri().path().starts_with(PREFIX) {
                admin
            } else {
                None
            };
            Ok::<_, std::convert::Infallible>(handle(&app, admin, req, peer).await)
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!same(b"0123456789abcdeF", b"0123456789abcdef"));
        assert!(!same(b"0123456789abcde", b"0123456789abcdef"));
        assert!(!same(b"0123456789abcdef0", b"0123456789abcdef"));
        assert!(!same(b"", b"0123456789abcdef"));
    }

    #[test]
    fn actions_and_their_methods() {
        assert_eq!(
            Action::of("/v1/admin/state"),
            Some((Action::State, Method::GET))
        );
        assert_eq!(
            Action::of("/v1/admin/reset"),
            Some((Action::Reset, Method::POST))
        );
        assert_eq!(
            Action::of("/v1/admin/top"),
            Some((Action::Top, Method::GET))
        );
        assert_eq!(Action::of("/v1/admin/other"), None);
        assert_eq!(Action::of("/v1/check"), None);
    }
}
