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
use crate::app::App;
use crate::deny::{deny_http_status, deny_status};
use crate::errors::ApiError;
use crate::identity::{classify, HttpRequestInfo};
use crate::render::{rate_limit_headers, CheckBody};
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
        let mut timer = self
            .app
            .check_timer("proxy", crate::http::routes::traceparent(req.headers()));
        let settings = self.app.settings.load();
        // A metered endpoint class reserves its estimate (reading the
        // request body for it if so configured).
        let cost = metered(&settings, &req);
        let (estimated, mut req) = match &cost {
            Some(cost) => {
                let (hits, req) = estimate(cost, req, self.limits.body_idle_timeout).await;
                (Some(hits), req)
            }
            None => (None, req.map(PrefixedBody::whole)),
        };
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
            self.app.trace_http_attributes(&mut timer, &settings, &info);
            timer.deciding();
            let cost = estimated.map_or((1, false), |hits| (hits, true));
            // Waits for the client, as long as the policies' max_wait.
            self.app
                .check_http_waiting(&settings, &info, LeaseMode::Held, MAX_WAIT, cost)
                .await
                .map(|w| w.verdicts.into_iter().next().unwrap_or_default())
        };
        if let Ok(verdict) = &verdict {
            timer.decided(verdict);
        }
        timer.finish();
        let verdict = match verdict {
            Ok(verdict) => verdict,
            Err(error) => {
                let error = ApiError::from(error);
                return Ok(json_error(error.status, &error.message));
            }
        };
        let rate_headers = rate_limit_headers(&verdict, settings.headers);
        if !verdict.allowed {
            let status = deny_status(&verdict, settings.policies.policies());
            let body = CheckBody::new(&verdict).with_deny_status(status);
            let body = serde_json::to_vec(&body).unwrap_or_default();
            let status = deny_http_status(&verdict, settings.policies.policies());
            let mut response = full(status, body);
            add(&mut response, &rate_headers);
            if req.version() < Version::HTTP_2 {
                // A client past its limit gives its connection back.
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            return Ok(response);
        }
        let guard = verdict_lease(&self.leases, &verdict);
        let slot = req.extensions().get::<ConnectionSlot>().cloned();
        let client_upgrade = upgrade_of(req.headers())
            .and_then(|asked| allowed_upgrade(&asked, &self.limits.upgrades))
            .map(|p| (p, hyper::upgrade::on(&mut req)));
        let (upstream_req, uploaded) =
            match self.upstream_request(req, peer, client_upgrade.as_ref()) {
                Ok(r) => r,
                Err(message) => return Ok(json_error(StatusCode::BAD_REQUEST, &message)),
            };
        // The response timeout counts from the end of the upload (which
        // itself only has to keep moving, `body_idle_timeout`).
        let response_timeout = self.limits.response_timeout;
        let sent = tokio::select! {
            answered = self.client.request(upstream_req) => Ok(answered),
            () = async {
                let _ = uploaded.await;
                tokio::time::sleep(response_timeout).await;
            } => Err(()),
        };
        let mut response = match sent {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => {
                tracing::debug!(%error, "upstream unreachable");
                // Nothing was served: the reservation costs nothing.
                self.meter(cost.as_ref(), &verdict, Some("0"));
                return Ok(json_error(
                    StatusCode::BAD_GATEWAY,
                    &format!("the upstream {} cannot be reached", self.scheme_authority),
                ));
            }
            Err(_) => {
                return Ok(json_error(
                    StatusCode::GATEWAY_TIMEOUT,
                    &format!("the upstream sent no response within {response_timeout:?}"),
                ))
            }
        };
        if let Some((protocol, client_side)) = client_upgrade {
            if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                let upstream_side = hyper::upgrade::on(&mut response);
                let held = Held { lease: guard, slot };
                let idle = self.limits.tunnel_idle_timeout;
                tokio::spawn(tunnel(client_side, upstream_side, idle, held));
                let (parts, _) = response.into_parts();
                let mut response = Response::from_parts(parts, empty());
                strip_hop_by_hop(response.headers_mut(), Some(&protocol));
                add(&mut response, &rate_headers);
                return Ok(response);
            }
        }
        let header = match cost.as_ref().map(|c| &c.source) {
            Some(CostSource::Header(name)) => response.headers().get(name.as_str()),
            _ => None,
        };
        let meter = self.meter(
            cost.as_ref(),
            &verdict,
            header.and_then(|v| v.to_str().ok()),
        );
        let (parts, body) = response.into_parts();
        let body = UsageBody::new(LeaseBody::new(body, guard), meter);
        let body = IdleBody::new(body, self.limits.body_idle_timeout);
        let mut response = Response::from_parts(parts, body.boxed());
        strip_hop_by_hop(response.headers_mut(), None);
        add(&mut response, &rate_headers);
        Ok(response)
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

/// The `cost` of the request's endpoint class, if it is metered.
fn metered(settings: &crate::app::Settings, req: &Request<Incoming>) -> Option<Cost> {
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
