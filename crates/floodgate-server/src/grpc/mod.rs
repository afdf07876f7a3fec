//! The gRPC listener (`server.grpc`): `floodgate.v1.RateLimiter`, Envoy's
//! rate limit service and ext_authz, `grpc.health.v1.Health` and server
//! reflection. Connections are capped (`server.max_connections`), pinged
//! (HTTP/2 keepalive) and TCP-keepalived; calls time out; request messages
//! are limited in size and undecodable ones answered `INVALID_ARGUMENT`.

mod ext_authz;
mod incoming;
mod rate_limiter;
mod rls;

use std::sync::Arc;

use floodgate_config::server::Limits;
use floodgate_proto::envoy::service::auth::v3::authorization_server::AuthorizationServer;
use floodgate_proto::envoy::service::ratelimit::v3::rate_limit_service_server::RateLimitServiceServer;
use floodgate_proto::floodgate::v1::rate_limiter_server::RateLimiterServer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::accept::ListenerSettings;
use crate::app::App;
pub use ext_authz::AuthzService;
pub use rate_limiter::RateLimiterService;
pub use rls::RlsService;

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
    health
        .set_serving::<RateLimitServiceServer<RlsService>>()
        .await;
    health
        .set_serving::<AuthorizationServer<AuthzService>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(floodgate_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?
        .max_decoding_message_size(max_message);
    let incoming = incoming::capped(listener, settings.max_connections, limits, shutdown.clone());
    let drained = shutdown.clone();
    let server = transport(&limits)
        .add_service(health_service.max_decoding_message_size(max_message))
        .add_service(reflection)
        .add_service(
            RateLimiterServer::new(RateLimiterService::new(app.clone()))
                .max_decoding_message_size(max_message),
        )
        .add_service(
            RateLimitServiceServer::new(RlsService::new(app.clone()))
                .max_decoding_message_size(max_message),
        )
        .add_service(
            AuthorizationServer::new(AuthzService::new(app)).max_decoding_message_size(max_message),
        )
        .serve_with_incoming_shutdown(incoming, async move { drained.cancelled().await });
    tokio::select! {
        result = server => result?,
        _ = async { shutdown.cancelled().await; tokio::time::sleep(settings.grace).await } => {
            tracing::warn!(grace = ?settings.grace, "grpc calls still open after the grace period");
        }
    }
    Ok(())
}

/// The server with the per-connection limits: streams, call timeout,
/// HTTP/2 keepalive, header and frame sizes.
fn transport(limits: &Limits) -> tonic::transport::Server {
    let streams = limits.max_concurrent_streams;
    tonic::transport::Server::builder()
        .concurrency_limit_per_connection(streams as usize)
        .max_concurrent_streams(streams)
        .timeout(limits.grpc_timeout)
        .http2_keepalive_interval(Some(limits.http2_keepalive_interval))
        .http2_keepalive_timeout(Some(limits.http2_keepalive_timeout))
        .http2_max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_frame_size(16 * 1024)
}
