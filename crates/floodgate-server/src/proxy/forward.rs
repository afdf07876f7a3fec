//! One proxied request: ask the limiter, then answer the deciding policy's
//! `deny_status` (429 by default) or forward to the
//! upstream with bodies streamed both ways (the configured upgrades, by
//! default only WebSocket, tunnelled).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use floodgate_config::server::ProxyLimits;
use floodgate_store::{LeaseMode, Verdict};
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::sync::oneshot;

use super::cost::{estimate, PrefixedBody};
use super::headers::{add_forwarded, strip_hop_by_hop, upgrade_of};
use super::idle_body::{BoxError, IdleBody};
use super::leases::{LeaseBody, LeaseGuard, Leases};
use super::sent_body::SentBody;
use super::tunnel::{allowed_upgrade, tunnel, Held};
use super::usage::{settle_from_header, Meter, UsageBody, UsageScanner};
use crate::accept::ConnectionSlot;
use crate::app::{App, Settings};
use crate::deny::{deny_http_status, deny_status};
use crate::errors::{error_response, json_response, ApiError};
use crate::identity::{classify, HttpRequestInfo};
use crate::render::{rate_limit_headers, CheckBody};
use crate::traces::CheckTimer;
use crate::waiting::MAX_WAIT;
use floodgate_config::cost::{Cost, CostSource};

/// Every body the proxy sends, either way.
pub type ProxyBody = BoxBody<Bytes, BoxError>;

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
    /// Upstream timeouts and the upgrades tunnelled.
    limits: ProxyLimits,
}

impl Forwarder {
    /// A forwarder to `upstream` (`http://host[:port][/base]`, validated by
    /// the config loader) with the timeouts of `limits`.
    ///
    /// # Errors
    /// When `upstream` is not an absolute `http://` URL.
    pub fn new(
        app: Arc<App>,
        upstream: &str,
        limits: &ProxyLimits,
        leases: Arc<Leases>,
    ) -> anyhow::Result<Forwarder> {
        let uri: Uri = upstream.parse()?;
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            anyhow::bail!("proxy upstream {upstream:?} is not an absolute URL");
        };
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(limits.connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(limits.pool_idle_timeout)
            .build(connector);
        Ok(Forwarder {
            app,
            scheme_authority: format!("{scheme}://{authority}"),
            base_path: uri.path().trim_end_matches('/').to_string(),
            client,
            leases,
            limits: limits.clone(),
        })
    }

    /// Answers one client request. Never fails: problems become 4xx/5xx.
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Result<Response<ProxyBody>, Infallible> {
        let timer = self
            .app
            .check_timer("proxy", crate::http::routes::traceparent(req.headers()));
        if req.uri().path() == "*" {
            // `OPTIONS *` asks about the server itself: there is no
            // resource to forward it to, so it is refused before counting.
            return Ok(json_error(ApiError::bad_request(
                "the proxy does not forward asterisk-form requests (OPTIONS *)",
            )));
        }
        let settings = self.app.settings.load();
        // A metered endpoint class reserves its estimate (reading the
        // request body for it if so configured).
        let cost = metered(&settings, &req);
        let (estimated, req) = self.estimated(cost.as_ref(), req).await;
        let verdict = match self.decide(timer, &settings, &req, peer, estimated).await {
            Ok(verdict) => verdict,
            Err(response) => return Ok(response),
        };
        let rate_headers = rate_limit_headers(&verdict, settings.headers);
        if !verdict.allowed {
            return Ok(denied(&verdict, &settings, &rate_headers, req.version()));
        }
        Ok(self.forward(req, peer, cost, verdict, rate_headers).await)
    }

    /// The hits a metered request reserves (its estimate), and the request
    /// with whatever of its body the estimate read put back in front.
    async fn estimated(
        &self,
        cost: Option<&Cost>,
        req: Request<Incoming>,
    ) -> (Option<u64>, Request<PrefixedBody>) {
        match cost {
            Some(cost) => {
                let (hits, req) = estimate(cost, req, self.limits.body_idle_timeout).await;
                (Some(hits), req)
            }
            None => (None, req.map(PrefixedBody::whole)),
        }
    }

    /// Asks the limiter about `req` (reserving `estimated` hits if
    /// metered, 1 otherwise), waiting for the client as long as the
    /// policies' `max_wait`, and closes the check's trace. An error that
    /// kept it from deciding is the response to send.
    async fn decide(
        &self,
        mut timer: CheckTimer,
        settings: &Settings,
        req: &Request<PrefixedBody>,
        peer: SocketAddr,
        estimated: Option<u64>,
    ) -> Result<Verdict, Response<ProxyBody>> {
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
        self.app.trace_http_attributes(&mut timer, settings, &info);
        timer.deciding();
        let cost = estimated.map_or((1, false), |hits| (hits, true));
        let verdict = self
            .app
            .check_http_waiting(settings, &info, LeaseMode::Held, MAX_WAIT, cost)
            .await
            .map(|w| w.verdicts.into_iter().next().unwrap_or_default());
        if let Ok(verdict) = &verdict {
            timer.decided(verdict);
        }
        timer.finish();
        verdict.map_err(|error| json_error(error.into()))
    }

    /// Forwards an allowed request and answers with the upstream's
    /// response: streamed back while its lease is held and its cost
    /// metered, or, for an accepted upgrade, handed to a tunnel.
    async fn forward(
        &self,
        mut req: Request<PrefixedBody>,
        peer: SocketAddr,
        cost: Option<Cost>,
        verdict: Verdict,
        rate_headers: Vec<(&'static str, String)>,
    ) -> Response<ProxyBody> {
        let guard = verdict_lease(&self.leases, &verdict);
        let slot = req.extensions().get::<ConnectionSlot>().cloned();
        let client_upgrade = upgrade_of(req.headers())
            .and_then(|asked| allowed_upgrade(&asked, &self.limits.upgrades))
            .map(|p| (p, hyper::upgrade::on(&mut req)));
        if reads_usage(cost.as_ref()) {
            // The usage is read from the body as it passes: it must come
            // uncompressed, whatever encoding the client asked for.
            (req.headers_mut()).insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_static("identity"),
            );
        }
        let (upstream_req, uploaded) =
            match self.upstream_request(req, peer, client_upgrade.as_ref()) {
                Ok(r) => r,
                Err(message) => return json_error(ApiError::bad_request(message)),
            };
        let response = match self
            .send(upstream_req, uploaded, cost.as_ref(), &verdict)
            .await
        {
            Ok(response) => response,
            Err(response) => return response,
        };
        if let Some((protocol, client_side)) = client_upgrade {
            if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                let held = Held { lease: guard, slot };
                return self.tunnelled(response, &protocol, client_side, held, &rate_headers);
            }
        }
        self.streamed(response, cost.as_ref(), &verdict, guard, &rate_headers)
    }

    /// Sends `upstream_req`; the response timeout counts from the end of
    /// the upload (which itself only has to keep moving,
    /// `body_idle_timeout`). A failure is the response to send (502 or
    /// 504); an unreachable upstream settles the reservation at 0.
    async fn send(
        &self,
        upstream_req: Request<ProxyBody>,
        uploaded: oneshot::Receiver<()>,
        cost: Option<&Cost>,
        verdict: &Verdict,
    ) -> Result<Response<Incoming>, Response<ProxyBody>> {
        let response_timeout = self.limits.response_timeout;
        let sent = tokio::select! {
            answered = self.client.request(upstream_req) => Ok(answered),
            () = async {
                let _ = uploaded.await;
                tokio::time::sleep(response_timeout).await;
            } => Err(()),
        };
        match sent {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => {
                tracing::debug!(%error, "upstream unreachable");
                // Nothing was served: the reservation costs nothing.
                self.meter(cost, verdict, Some("0"));
                Err(json_error(ApiError {
                    status: StatusCode::BAD_GATEWAY,
                    message: format!("the upstream {} cannot be reached", self.scheme_authority),
                }))
            }
            Err(()) => Err(json_error(ApiError {
                status: StatusCode::GATEWAY_TIMEOUT,
                message: format!("the upstream sent no response within {response_timeout:?}"),
            })),
        }
    }

    /// The upstream switched protocols: both sides are joined by a tunnel
    /// that holds the lease and the connection slot until it closes; the
    /// client gets the 101 with its `Upgrade` header.
    fn tunnelled(
        &self,
        mut response: Response<Incoming>,
        protocol: &HeaderValue,
        client_side: hyper::upgrade::OnUpgrade,
        held: Held,
        rate_headers: &[(&'static str, String)],
    ) -> Response<ProxyBody> {
        let upstream_side = hyper::upgrade::on(&mut response);
        let idle = self.limits.tunnel_idle_timeout;
        tokio::spawn(tunnel(client_side, upstream_side, idle, held));
        let (parts, _) = response.into_parts();
        let mut response = Response::from_parts(parts, empty());
        strip_hop_by_hop(response.headers_mut(), Some(protocol));
        add(&mut response, rate_headers);
        response
    }

    /// The upstream's response, its body streamed back holding the lease
    /// until it ends and metering the request's cost (from a response
    /// header at once, or from the body's `usage`).
    fn streamed(
        &self,
        response: Response<Incoming>,
        cost: Option<&Cost>,
        verdict: &Verdict,
        guard: Option<LeaseGuard>,
        rate_headers: &[(&'static str, String)],
    ) -> Response<ProxyBody> {
        let header = match cost.map(|c| &c.source) {
            Some(CostSource::Header(name)) => response.headers().get(name.as_str()),
            _ => None,
        };
        if reads_usage(cost) && encoded(response.headers()) {
            warn_encoded_usage(response.headers());
        }
        let meter = self.meter(cost, verdict, header.and_then(|v| v.to_str().ok()));
        let (parts, body) = response.into_parts();
        let body = UsageBody::new(LeaseBody::new(body, guard), meter);
        let body = IdleBody::new(body, self.limits.body_idle_timeout);
        let mut response = Response::from_parts(parts, body.boxed());
        strip_hop_by_hop(response.headers_mut(), None);
        add(&mut response, rate_headers);
        response
    }

    /// The request to send upstream: same method, path and query under the
    /// upstream's base, end-to-end headers, `X-Forwarded-*`, HTTP/1.1; and
    /// what resolves once its body has been sent.
    fn upstream_request(
        &self,
        req: Request<PrefixedBody>,
        peer: SocketAddr,
        upgrade: Option<&(HeaderValue, hyper::upgrade::OnUpgrade)>,
    ) -> Result<(Request<ProxyBody>, oneshot::Receiver<()>), String> {
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
        let (body, uploaded) = SentBody::new(body);
        let body = IdleBody::new(body, self.limits.body_idle_timeout);
        Ok((Request::from_parts(parts, body.boxed()), uploaded))
    }
}

impl Forwarder {
    /// How the reservation of `verdict` (if any) is settled: from the
    /// response header value `header` at once (the `header` source, or "0"
    /// for a request that was never served), or by a [`Meter`] reading the
    /// body's `usage` (the `usage` source).
    fn meter(&self, cost: Option<&Cost>, verdict: &Verdict, header: Option<&str>) -> Option<Meter> {
        let settlement = verdict.settlement.clone()?;
        match (&cost?.source, header) {
            (CostSource::Usage(field), None) => Some(Meter {
                app: self.app.clone(),
                settlement,
                scanner: UsageScanner::new(field.as_str()),
            }),
            (_, header) => {
                settle_from_header(&self.app, settlement, header);
                None
            }
        }
    }
}

/// Whether `cost` is read from the response body's `usage`.
fn reads_usage(cost: Option<&Cost>) -> bool {
    matches!(cost.map(|c| &c.source), Some(CostSource::Usage(_)))
}

/// Whether a response's body is content-encoded (compressed).
fn encoded(headers: &http::HeaderMap) -> bool {
    (headers.get_all(header::CONTENT_ENCODING).iter())
        .any(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"))
}

/// Logs, once per process, that the upstream compressed a response whose
/// cost is its `usage`: asked for `identity`, it answered otherwise, so
/// the usage cannot be read and the estimate stands.
fn warn_encoded_usage(headers: &http::HeaderMap) {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        let encoding = headers.get(header::CONTENT_ENCODING);
        tracing::warn!(
            ?encoding,
            "proxy: the upstream compressed a response whose cost is its usage although asked \
             for Accept-Encoding: identity; its usage cannot be read, so such calls keep their \
             estimate. Turn compression off for these routes in the app"
        );
    }
}

/// The `cost` of the request's endpoint class, if it is metered.
fn metered(settings: &Settings, req: &Request<Incoming>) -> Option<Cost> {
    if settings.costs.is_empty() {
        return None;
    }
    let target = req
        .uri()
        .path_and_query()
        .map_or(req.uri().path(), |pq| pq.as_str());
    let class = classify(&settings.endpoints, req.method().as_str(), target)?;
    settings.costs.get(class).cloned()
}

/// The lease of an allowed concurrency check, held by the proxy.
fn verdict_lease(leases: &Arc<Leases>, verdict: &Verdict) -> Option<LeaseGuard> {
    verdict.lease.clone().map(|token| leases.hold(token))
}

/// The answer to a denied request: the deciding policy's `deny_status`
/// with the check's JSON body and rate-limit headers; over HTTP/1 the
/// connection closes.
fn denied(
    verdict: &Verdict,
    settings: &Settings,
    rate_headers: &[(&'static str, String)],
    version: Version,
) -> Response<ProxyBody> {
    let status = deny_status(verdict, settings.policies.policies());
    let body = CheckBody::new(verdict).with_deny_status(status);
    let status = deny_http_status(verdict, settings.policies.policies());
    let mut response = boxed(json_response(status, body.to_json()));
    add(&mut response, rate_headers);
    if version < Version::HTTP_2 {
        // A client past its limit gives its connection back.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

fn empty() -> ProxyBody {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed()
}

/// One of the server's JSON responses as a proxy response.
fn boxed(response: Response<Full<Bytes>>) -> Response<ProxyBody> {
    response.map(|body| body.map_err(|never| match never {}).boxed())
}

/// `error` as its status and `{"error": ...}` body (see
/// [`error_response`]).
fn json_error(error: ApiError) -> Response<ProxyBody> {
    boxed(error_response(error))
}

fn add(response: &mut Response<ProxyBody>, headers: &[(&'static str, String)]) {
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(value) {
            response.headers_mut().insert(*name, value);
        }
    }
}
