//! The protocols the bench speaks: one file each, one [`Client`] enum over
//! them so the runner stays protocol-agnostic without boxing every call.
//!
//! A [`Client`] is owned by exactly one worker and carries one check at a
//! time; concurrency comes from running many workers.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::error::BenchError;
use crate::target::Target;

mod envoy;
mod grpc;
mod http;

pub use self::envoy::EnvoyClient;
pub use self::grpc::GrpcClient;
pub use self::http::HttpClient;

/// Which API the checks go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// `floodgate.v1.RateLimiter/Check` over gRPC.
    Grpc,
    /// `POST /v1/check` with a JSON body over HTTP/1.1 keep-alive.
    Http,
    /// `envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`.
    Envoy,
}

impl Protocol {
    /// The lower-case name used in flags and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::Http => "http",
            Protocol::Envoy => "envoy",
        }
    }

    /// The sidecar's default listener for this protocol (docs/configuration.md, `[server]`).
    pub fn default_target(self) -> &'static str {
        match self {
            Protocol::Http => "127.0.0.1:9720",
            Protocol::Grpc | Protocol::Envoy => "127.0.0.1:9721",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What every check of a run carries besides its key: `user=<prefix><index>`
/// plus the `--attr` pairs, `hits`, and the Envoy domain.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestTemplate {
    /// Prepended to the key index to form the `user` value.
    pub key_prefix: String,
    /// Extra attributes (never `user`), sorted by name.
    pub attributes: BTreeMap<String, String>,
    /// The cost of each check.
    pub hits: u64,
    /// The Envoy RLS `domain` (Envoy protocol only).
    pub domain: String,
    /// With N, each check also carries `tenant=t<index mod N>` (gRPC only).
    pub tenants: Option<u64>,
}

impl RequestTemplate {
    /// The `user` value for key `index`.
    pub fn user(&self, index: u64) -> String {
        format!("{}{index}", self.key_prefix)
    }

    /// The `tenant` value for key `index`, when `tenants` is set.
    pub fn tenant(&self, index: u64) -> Option<String> {
        self.tenants.map(|n| format!("t{}", index % n))
    }
}

/// How one check ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 200 / `allowed = true` / `OK`.
    Allowed,
    /// 429 / `allowed = false` / `OVER_LIMIT`.
    Denied,
    /// The server answered with something else: an HTTP status other than
    /// 200/429, or a gRPC status other than OK (labelled `grpc:<code>`).
    Status(String),
    /// No answer: connect, I/O, protocol error or timeout.
    Transport(String),
}

/// One worker's connection to one target.
#[derive(Debug)]
pub enum Client {
    /// floodgate.v1 gRPC.
    Grpc(GrpcClient),
    /// HTTP `/v1/check`.
    Http(HttpClient),
    /// Envoy RLS v3 gRPC.
    Envoy(EnvoyClient),
}

impl Client {
    /// Opens one connection slot to `target` and returns `in_flight` clients
    /// for it: for gRPC one HTTP/2 channel shared by `in_flight` workers; for
    /// HTTP/1.1, which carries one request at a time, one keep-alive
    /// connection per worker.
    ///
    /// # Errors
    /// [`BenchError::Connect`] when the target cannot be reached.
    pub async fn open(
        protocol: Protocol,
        target: &Target,
        template: &Arc<RequestTemplate>,
        in_flight: usize,
    ) -> Result<Vec<Client>, BenchError> {
        match protocol {
            Protocol::Grpc => {
                let client = GrpcClient::connect(target, template.clone()).await?;
                Ok((0..in_flight)
                    .map(|_| Client::Grpc(client.clone()))
                    .collect())
            }
            Protocol::Envoy => {
                let client = EnvoyClient::connect(target, template.clone()).await?;
                Ok((0..in_flight)
                    .map(|_| Client::Envoy(client.clone()))
                    .collect())
            }
            Protocol::Http => {
                let mut clients = Vec::with_capacity(in_flight);
                for _ in 0..in_flight {
                    let client = HttpClient::connect(target, template.clone()).await?;
                    clients.push(Client::Http(client));
                }
                Ok(clients)
            }
        }
    }

    /// Forgets the connection state after a check was abandoned (timeout):
    /// an HTTP/1.1 connection with an unanswered request cannot carry the
    /// next one, so it is closed and reopened; gRPC cancels the stream.
    pub fn reset(&mut self) {
        if let Client::Http(c) = self {
            c.reset();
        }
    }

    /// Sends one check for key `index` and waits for its answer.
    pub async fn check(&mut self, index: u64) -> Outcome {
        match self {
            Client::Grpc(c) => c.check(index).await,
            Client::Http(c) => c.check(index).await,
            Client::Envoy(c) => c.check(index).await,
        }
    }
}
