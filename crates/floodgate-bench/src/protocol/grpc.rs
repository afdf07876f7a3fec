//! `floodgate.v1.RateLimiter/Check` over one tonic channel per connection
//! slot, shared by the slot's in-flight workers (HTTP/2 multiplexes them).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use floodgate_proto::floodgate::v1::rate_limiter_client::RateLimiterClient;
use floodgate_proto::floodgate::v1::CheckRequest;
use tonic::transport::{Channel, Endpoint};

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
        let channel = open_channel(target, "grpc").await?;
        Ok(GrpcClient {
            client: RateLimiterClient::new(channel),
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

/// Connects an HTTP/2 channel to a loopback target (shared with Envoy RLS).
pub(super) async fn open_channel(
    target: &Target,
    protocol: &'static str,
) -> Result<Channel, BenchError> {
    let addr = target.addr();
    let error = |message: String| BenchError::Connect {
        addr,
        protocol,
        message,
    };
    Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| error(e.to_string()))?
        .tcp_nodelay(true)
        .connect_timeout(CONNECT_TIMEOUT)
        .connect()
        .await
        .map_err(|e| error(format!("{e}: {}", source_chain(&e))))
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
