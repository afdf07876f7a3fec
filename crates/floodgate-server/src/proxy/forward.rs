//! One proxied request: ask the limiter, then answer 429 or forward to the
//! upstream with bodies streamed both ways (WebSocket upgrades tunnelled).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use floodgate_store::Verdict;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::time::Instant;

use super::headers::{add_forwarded, strip_hop_by_hop, upgrade_of};
use super::leases::{LeaseBody, LeaseGuard, Leases};
use crate::app::App;
use crate::errors::ApiError;
use crate::identity::HttpRequestInfo;
use crate::render::{rate_limit_headers, CheckBody};

/// Every body the proxy answers with.
pub type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// How long connecting to the upstream may take before the answer is 502.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the upstream may take to send its response headers before the
/// answer is 504 (bodies may then stream for as long as they need).
pub(super) const RESPONSE_TIMEOUT: Duration = Duration::from_secs(300);

/// The forwarder: the limiter, the upstream, the client that reaches it.
pub struct Forwarder {
    /// The limiter and settings.
    app: Arc<App>,
    /// `http://host:port` of the upstream.
    scheme_authority: String,
    /// A path prefix every forwarded path gets ("" for none).
    base_path: String,
    /// Pooled HTTP/1.1 connections to the upstream.
    client: Client<HttpConnector, ProxyBody>,
    /// Leases of requests in flight.
    leases: Arc<Leases>,
}

impl Forwarder {
    /// A forwarder to `upstream` (`http://host[:port][/base]`, validated by
    /// the config loader).
    ///
    /// # Errors
    /// When `upstream` is not an absolute `http://` URL.
    pub fn new(app: Arc<App>, upstream: &str, leases: Arc<Leases>) -> anyhow::Result<Forwarder> {
        let uri: Uri = upstream.parse()?;
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            anyhow::bail!("proxy upstream {upstream:?} is not an absolute URL");
        };
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        Ok(Forwarder {
            app,
            scheme_authority: format!("{scheme}://{authority}"),
            base_path: uri.path().trim_end_matches('/').to_string(),
            client: Client::builder(TokioExecutor::new()).build(connector),
            leases,
        })
    }

    /// Answers one client request. Never fails: problems become 4xx/5xx.
    pub async fn handle(
        self: Arc<Self>,
        mut req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Result<Response<ProxyBody>, Infallible> {
        let started = Instant::now();
        let settings = self.app.settings.load();
        let verdict = {
            let target = req
                .uri()
                .path_and_query()
                .map_or(req.uri().path(), |pq| pq.as_str());
            let info = HttpRequestInfo::from_headers(
                req.method().as_str(),
                target,
                peer.ip(),
                req.headers(),
                &settings.identity.user_header,
                false,
            );
            self.app.check_http(&settings, &info).await
        };
        metrics::histogram!("floodgate_check_duration_seconds", "transport" => "proxy")
            .record(started.elapsed().as_secs_f64());
        let verdict = match verdict {
            Ok(verdict) => verdict,
            Err(error) => {
                let error = ApiError::from(error);
                return Ok(json_error(error.status, &error.message));
            }
        };
        let rate_headers = rate_limit_headers(&verdict, settings.headers);
        if !verdict.allowed {
            let body = serde_json::to_vec(&CheckBody::new(&verdict)).unwrap_or_default();
            let mut response = full(StatusCode::TOO_MANY_REQUESTS, body);
            add(&mut response, &rate_headers);
            return Ok(response);
        }
        let guard = verdict_lease(&self.leases, &verdict);
        let client_upgrade = upgrade_of(req.headers()).map(|p| (p, hyper::upgrade::on(&mut req)));
        let upstream_req = match self.upstream_request(req, peer, client_upgrade.as_ref()) {
            Ok(r) => r,
            Err(message) => return Ok(json_error(StatusCode::BAD_REQUEST, &message)),
        };
        let sent = tokio::time::timeout(RESPONSE_TIMEOUT, self.client.request(upstream_req)).await;
        let mut response = match sent {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => {
                tracing::debug!(%error, "upstream unreachable");
                return Ok(json_error(
                    StatusCode::BAD_GATEWAY,
                    &format!("the upstream {} cannot be reached", self.scheme_authority),
                ));
            }
            Err(_) => {
                return Ok(json_error(
                    StatusCode::GATEWAY_TIMEOUT,
                    &format!("the upstream sent no response within {RESPONSE_TIMEOUT:?}"),
                ))
            }
        };
        if let Some((protocol, client_side)) = client_upgrade {
            if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                let upstream_side = hyper::upgrade::on(&mut response);
                tokio::spawn(tunnel(client_side, upstream_side, guard));
                let (parts, _) = response.into_parts();
                let mut response = Response::from_parts(parts, empty());
                strip_hop_by_hop(response.headers_mut(), Some(&protocol));
                add(&mut response, &rate_headers);
                return Ok(response);
            }
        }
        let (parts, body) = response.into_parts();
        let mut response = Response::from_parts(parts, LeaseBody::new(body, guard).boxed());
        strip_hop_by_hop(response.headers_mut(), None);
        add(&mut response, &rate_headers);
        Ok(response)
    }

    /// The request to send upstream: same method, path and query under the
    /// upstream's base, end-to-end headers, `X-Forwarded-*`, HTTP/1.1.
    fn upstream_request(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        upgrade: Option<&(HeaderValue, hyper::upgrade::OnUpgrade)>,
    ) -> Result<Request<ProxyBody>, String> {
        let (mut parts, body) = req.into_parts();
        let path = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let uri = format!("{}{}{}", self.scheme_authority, self.base_path, path);
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
            .or_else(|| parts.uri.authority().map(|a| a.to_string()));
        parts.uri = uri
            .parse()
            .map_err(|e| format!("cannot forward {path:?}: {e}"))?;
        parts.version = Version::HTTP_11;
        strip_hop_by_hop(&mut parts.headers, upgrade.map(|(p, _)| p));
        add_forwarded(&mut parts.headers, peer.ip(), host.as_deref());
        if let Some(host) = host.and_then(|h| HeaderValue::from_str(&h).ok()) {
            parts.headers.insert(header::HOST, host);
        }
        Ok(Request::from_parts(parts, body.boxed()))
    }
}

/// The lease of an allowed concurrency check, held by the proxy.
fn verdict_lease(leases: &Arc<Leases>, verdict: &Verdict) -> Option<LeaseGuard> {
    verdict.lease.clone().map(|token| leases.hold(token))
}

/// Copies bytes both ways between the upgraded client and upstream
/// connections until either side closes; then the lease goes.
async fn tunnel(
    client: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    lease: Option<LeaseGuard>,
) {
    match tokio::join!(client, upstream) {
        (Ok(client), Ok(upstream)) => {
            let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
            if let Err(error) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                tracing::debug!(%error, "proxied upgrade ended with an error");
            }
        }
        (Err(error), _) | (_, Err(error)) => {
            tracing::debug!(%error, "a proxied upgrade did not complete");
        }
    }
    drop(lease);
}

fn empty() -> ProxyBody {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed()
}

fn full(status: StatusCode, body: Vec<u8>) -> Response<ProxyBody> {
    let mut response = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// `{"error": message}` with `status`.
fn json_error(status: StatusCode, message: &str) -> Response<ProxyBody> {
    full(
        status,
        serde_json::json!({ "error": message })
            .to_string()
            .into_bytes(),
    )
}

fn add(response: &mut Response<ProxyBody>, headers: &[(&'static str, String)]) {
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(value) {
            response.headers_mut().insert(*name, value);
        }
    }
}
