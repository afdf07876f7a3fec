//! `floodgate.v1.RateLimiter/Check` over one HTTP/2 connection per
//! connection slot, shared by the slot's in-flight workers (HTTP/2
//! multiplexes them).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use floodgate_proto::floodgate::v1::rate_limiter_client::RateLimiterClient;
use floodgate_proto::floodgate::v1::CheckRequest;

use super::{grpc_error, Outcome, RequestTemplate};
use crate::error::BenchError;
use crate::target::Target;

/// How long the first connection of a slot may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A floodgate.v1 client on a shared channel.
#[derive(Debug, Clone)]
pub struct GrpcClient {
    /// The generated client (a cheap handle on the channel).
    client: RateLimiterClient<Channel>,
    /// What each check carries.
    template: Arc<RequestTemplate>,
}

impl GrpcClient {
    /// Opens one HTTP/2 channel to `target`.
    ///
    /// # Errors
    /// [`BenchError::Connect`] when the channel cannot be established.
    pub async fn connect(
        target: &Target,
        template: Arc<RequestTemplate>,
    ) -> Result<GrpcClient, BenchError> {
        let (channel, origin) = open_channel(target, "grpc").await?;
        Ok(GrpcClient {
            client: RateLimiterClient::with_origin(channel, origin),
            template,
        })
    }

    /// One `Check` for key `index`.
    pub async fn check(&mut self, index: u64) -> Outcome {
        let mut attributes: HashMap<String, String> = self
            .template
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        attributes.insert("user".to_string(), self.template.user(index));
        let request = CheckRequest {
            attributes,
            hits: Some(self.template.hits),
        };
        match self.client.check(request).await {
            Ok(response) if response.get_ref().allowed => Outcome::Allowed,
            Ok(_) => Outcome::Denied,
            Err(status) => grpc_error(&status),
        }
    }
}

/// One HTTP/2 connection as tonic's clients need it: requests go straight
/// to hyper's connection handle. tonic's own `Channel` puts a buffer task in
/// front of it (a task hop per request), and the generator's CPU is taken
/// from the sidecar it measures on a 2-core machine.
#[derive(Debug, Clone)]
pub(super) struct Channel {
    /// hyper's handle on the connection (cheap to clone; shares it).
    send: hyper::client::conn::http2::SendRequest<tonic::body::Body>,
}

impl tower_service::Service<http::Request<tonic::body::Body>> for Channel {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = hyper::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.send.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(self.send.send_request(request))
    }
}

/// Connects an HTTP/2 connection to a loopback target (shared with Envoy
/// RLS) and returns it with the origin its requests name.
pub(super) async fn open_channel(
    target: &Target,
    protocol: &'static str,
) -> Result<(Channel, http::Uri), BenchError> {
    let addr = target.addr();
    let error = |message: String| BenchError::Connect {
        addr,
        protocol,
        message,
    };
    let origin: http::Uri = format!("http://{addr}")
        .parse()
        .map_err(|e: http::uri::InvalidUri| error(e.to_string()))?;
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| error(format!("no connection within {CONNECT_TIMEOUT:?}")))?
        .map_err(|e| error(e.to_string()))?;
    tcp.set_nodelay(true).map_err(|e| error(e.to_string()))?;
    let (send, connection) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .map_err(|e| error(format!("{e}: {}", source_chain(&e))))?;
    // The connection's I/O runs until the handle and every clone are gone.
    tokio::spawn(connection);
    Ok((Channel { send }, origin))
}

/// The `source()` chain of an error, joined, for messages that say why.
fn source_chain(error: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut next = error.source();
    while let Some(e) = next {
        parts.push(e.to_string());
        next = e.source();
    }
    parts.join(": ")
}
