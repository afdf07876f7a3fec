//! The gRPC listener (`server.grpc`): `floodgate.v1.RateLimiter`, Envoy's
//! rate limit service and ext_authz, `grpc.health.v1.Health` and server
//! reflection.

pub mod ext_authz;
mod rate_limiter;
pub mod rls;

use std::sync::Arc;
use std::time::Duration;

use floodgate_proto::envoy::service::auth::v3::authorization_server::AuthorizationServer;
use floodgate_proto::envoy::service::ratelimit::v3::rate_limit_service_server::RateLimitServiceServer;
use floodgate_proto::floodgate::v1::rate_limiter_server::RateLimiterServer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;

use crate::app::App;
pub use ext_authz::AuthzService;
pub use rate_limiter::RateLimiterService;
pub use rls::RlsService;

/// Serves gRPC on `listener` until `shutdown` fires, then lets in-flight
/// calls finish for at most `grace`. Streams per connection are capped
/// (1024); `server.max_connections` caps the HTTP listener only.
///
/// # Errors
/// When the reflection service cannot be built or the server fails.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    grace: Duration,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
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
        .build_v1()?;
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let drained = shutdown.clone();
    let server = tonic::transport::Server::builder()
        .concurrency_limit_per_connection(1024)
        .max_concurrent_streams(Some(1024))
        .add_service(health_service)
        .add_service(reflection)
        .add_service(RateLimiterServer::new(RateLimiterService::new(app.clone())))
        .add_service(RateLimitServiceServer::new(RlsService::new(app.clone())))
        .add_service(AuthorizationServer::new(AuthzService::new(app)))
        .serve_with_incoming_shutdown(incoming, async move { drained.cancelled().await });
    tokio::select! {
        result = server => result?,
        _ = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(?grace, "grpc calls still open after the grace period");
        }
    }
    Ok(())
}
