//! The gRPC listener (`server.grpc`): `floodgate.v1.RateLimiter`, Envoy's
//! rate limit service and ext_authz, `grpc.health.v1.Health` and server
//! reflection. Connections go through the same accept loop as the HTTP
//! listeners (capped, pinged, TCP-keepalived, closed when idle or when the
//! client stops reading); calls, streaming ones too, time out; request
//! messages are limited in size and undecodable ones answered
//! `INVALID_ARGUMENT`.

pub mod ext_authz;
mod rate_limiter;
pub mod rls;
mod streams;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use floodgate_proto::envoy::service::auth::v3::authorization_server::AuthorizationServer;
use floodgate_proto::floodgate::v1::rate_limiter_server::RateLimiterServer;
use http::HeaderName;
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::codegen::{BoxFuture, Service};
use tonic::server::NamedService;
use tonic::service::Routes;

use crate::accept::{ListenerSettings, TimeLimit};
use crate::app::App;
pub use ext_authz::AuthzService;
pub use rate_limiter::RateLimiterService;
pub use rls::{RlsServer, RlsService};
use streams::TimeLimited;

/// Serves gRPC on `listener` until `shutdown` fires, then lets in-flight
/// calls finish for at most `settings.grace`.
///
/// # Errors
/// When the reflection service cannot be built or the server fails.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    settings: ListenerSettings,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let limits = settings.limits;
    let max_message = limits.grpc_max_message_bytes;
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<RateLimiterServer<RateLimiterService>>()
        .await;
    health.set_serving::<RlsServer>().await;
    health
        .set_serving::<AuthorizationServer<AuthzService>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(floodgate_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?
        .max_decoding_message_size(max_message);
    let checks = Checks {
        longest: limits.grpc_timeout,
        rate_limiter: RateLimiterServer::new(RateLimiterService::new(app.clone()))
            .max_decoding_message_size(max_message),
        rls: RlsServer::new(RlsService::new(app.clone()), max_message),
        authz: AuthorizationServer::new(AuthzService::new(app))
            .max_decoding_message_size(max_message),
    };
    let routes = Routes::new(health_service.max_decoding_message_size(max_message))
        .add_service(reflection)
        .prepare();
    let limit = TimeLimit {
        longest: limits.grpc_timeout,
        of: |req, longest| call_timeout(req.headers(), longest),
        elapsed: |_| Ok(tonic::Status::cancelled("Timeout expired").into_http()),
    };
    crate::accept::serve(
        settings,
        listener,
        shutdown,
        Some(limit),
        move |req, _peer| checks.call(req, &routes),
    )
    .await;
    Ok(())
}

/// The services that answer checks, called straight by their path's
/// service name; anything else goes through tonic's router (health,
/// reflection; an unknown service is UNIMPLEMENTED there), which would
/// cost every check a path lookup and a boxed service.
struct Checks {
    /// `grpc_timeout`, which streaming calls are held to as well.
    longest: Duration,
    rate_limiter: RateLimiterServer<RateLimiterService>,
    rls: RlsServer,
    authz: AuthorizationServer<AuthzService>,
}

/// A service's answer to one call.
type Call = BoxFuture<http::Response<tonic::body::Body>, Infallible>;

impl Checks {
    /// `req` (`/<service>/<method>`) called on its service when that is
    /// one of these, else on `routes`.
    fn call(&self, req: http::Request<Incoming>, routes: &Routes) -> Call {
        let path = req.uri().path();
        let service = path.strip_prefix('/').and_then(|p| p.split_once('/'));
        match service.map(|(service, _method)| service) {
            Some(RateLimiterServer::<RateLimiterService>::NAME) => {
                self.rate_limiter.clone().call(req)
            }
            Some(RlsServer::NAME) => self.rls.clone().call(req),
            Some(AuthorizationServer::<AuthzService>::NAME) => self.authz.clone().call(req),
            // Health and reflection hold streaming calls (`Watch`,
            // `ServerReflectionInfo`): their bodies end at the call's limit.
            _ => {
                let until = Instant::now() + call_timeout(req.headers(), self.longest);
                let call = routes.clone().call(req);
                Box::pin(async move {
                    let response = call.await?;
                    Ok(response.map(|body| tonic::body::Body::new(TimeLimited::new(body, until))))
                })
            }
        }
    }
}

/// The metadata every call reads, named once (a name given as text is
/// parsed again on each lookup).
const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// How long one call may run: `grpc_timeout`, or the caller's own
/// `grpc-timeout` header when that is shorter.
fn call_timeout(headers: &http::HeaderMap, longest: Duration) -> Duration {
    let asked = grpc_timeout_value(headers).and_then(parse_grpc_timeout);
    asked.map_or(longest, |asked| asked.min(longest))
}

/// The `grpc-timeout` value of `headers`, if any.
fn grpc_timeout_value(headers: &http::HeaderMap) -> Option<&str> {
    headers.get(GRPC_TIMEOUT).and_then(|v| v.to_str().ok())
}

/// A `grpc-timeout` value: at most 8 digits and a unit (H, M, S, m, u, n).
pub(crate) fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3_600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// How long an Envoy call may wait for capacity: never past Envoy's own
/// timeout (its `grpc-timeout`), within `grpc_timeout` and `envoy_max_wait`.
fn envoy_budget<T>(app: &App, request: &tonic::Request<T>) -> Duration {
    crate::waiting::envoy_budget(
        grpc_timeout(request),
        app.limits.grpc_timeout,
        app.limits.envoy_max_wait,
    )
}

/// The call's `grpc-timeout` metadata, if any.
fn grpc_timeout<T>(request: &tonic::Request<T>) -> Option<&str> {
    grpc_timeout_value(request.metadata().as_ref())
}

/// The call's W3C `traceparent` metadata, if any.
pub fn traceparent<T>(request: &tonic::Request<T>) -> Option<&[u8]> {
    let headers: &http::HeaderMap = request.metadata().as_ref();
    headers
        .get(crate::traces::TRACEPARENT)
        .map(http::HeaderValue::as_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shorter_of_grpc_timeout_and_the_callers_deadline_applies() {
        let longest = Duration::from_secs(30);
        let mut headers = http::HeaderMap::new();
        assert_eq!(call_timeout(&headers, longest), longest);
        for (value, expected) in [
            ("20m", Duration::from_millis(20)),
            ("5S", Duration::from_secs(5)),
            ("1H", longest),
            ("100u", Duration::from_micros(100)),
            ("7", longest),
            ("x5S", longest),
            ("123456789S", longest),
            ("", longest),
        ] {
            headers.insert("grpc-timeout", value.parse().unwrap());
            assert_eq!(call_timeout(&headers, longest), expected, "{value}");
        }
    }
}
