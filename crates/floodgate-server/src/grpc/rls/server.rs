//! The gRPC service around [`RlsService`]: what tonic would generate for
//! `RateLimitService`, except that `ShouldRateLimit` answers with an
//! [`Answer`] written straight to the wire instead of a `RateLimitResponse`
//! built first.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use floodgate_proto::codec::InvalidArgumentCodec;
use floodgate_proto::envoy::service::ratelimit::v3::RateLimitRequest;
use tonic::body::Body;
use tonic::codegen::{BoxFuture, Service, StdError};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};

use super::answer::Answer;
use super::RlsService;

/// `envoy.service.ratelimit.v3.RateLimitService`, served by [`RlsService`].
#[derive(Clone)]
pub struct RlsServer {
    /// The service.
    service: Arc<RlsService>,
    /// Largest request message accepted.
    max_decoding_message_size: usize,
}

impl RlsServer {
    /// Serves `service`, refusing request messages over `max_message` bytes.
    pub fn new(service: RlsService, max_message: usize) -> Self {
        RlsServer {
            service: Arc::new(service),
            max_decoding_message_size: max_message,
        }
    }
}

impl NamedService for RlsServer {
    const NAME: &'static str = "envoy.service.ratelimit.v3.RateLimitService";
}

/// The one method, `ShouldRateLimit`.
struct ShouldRateLimit(Arc<RlsService>);

impl UnaryService<RateLimitRequest> for ShouldRateLimit {
    type Response = Answer;
    type Future = BoxFuture<Response<Answer>, Status>;

    fn call(&mut self, request: Request<RateLimitRequest>) -> Self::Future {
        let service = self.0.clone();
        Box::pin(async move { service.should_rate_limit(request).await })
    }
}

impl<B> Service<http::Request<B>> for RlsServer
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit" {
            return Box::pin(async { Ok(Status::unimplemented("").into_http()) });
        }
        let method = ShouldRateLimit(self.service.clone());
        let max_decoding = self.max_decoding_message_size;
        Box::pin(async move {
            let codec = InvalidArgumentCodec::<Answer, RateLimitRequest>::default();
            let mut grpc = Grpc::new(codec).apply_max_message_size_config(Some(max_decoding), None);
            Ok(grpc.unary(method, req).await)
        })
    }
}
