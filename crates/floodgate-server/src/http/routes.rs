//! HTTP routes: `/v1/check`, `/v1/release`, `/v1/settle`, `/v1/auth` (nginx
//! `auth_request`), `/v1/policies`, `/healthz`, `/readyz`, `/metrics`, and
//! the status page (`/`, `/ui`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use floodgate_config::server::HeaderMode;
use floodgate_core::{Attributes, Policy};
use floodgate_store::{Check, LeaseMode, Verdict};
use http::{header, HeaderValue, Method, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::Request;
use serde::{Deserialize, Serialize};

use super::{body, status_page};
use crate::app::App;
use crate::deny::deny_status;
pub(crate) use crate::errors::error_response;
use crate::errors::{json_response, ApiError};
use crate::identity::{header_target, HttpRequestInfo};
use crate::render::{each_rate_limit_header, ms, CheckBody};
use crate::waiting::{self, MAX_WAIT_HEADER};

/// Every response this listener sends.
pub type HttpResponse = Response<Full<Bytes>>;

/// Routes one request. Never fails: errors become JSON error responses.
pub async fn handle(
    app: Arc<App>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Result<HttpResponse, Infallible> {
    let path = req.uri().path();
    let result = match (req.method(), path) {
        (_, "/v1/auth") => auth(&app, &req, peer).await,
        (&Method::POST, "/v1/check") => check(&app, req).await,
        (&Method::POST, "/v1/release") => release(&app, req).await,
        (&Method::POST, "/v1/settle") => super::settle::settle(&app, req).await,
        (&Method::GET, "/v1/policies") => Ok(policies(&app)),
        (&Method::GET | &Method::HEAD, "/healthz") => {
            Ok(json(StatusCode::OK, &Health { ok: true }))
        }
        (&Method::GET | &Method::HEAD, "/readyz") => Ok(ready(&app)),
        (&Method::GET, "/metrics") => Ok(metrics(&app)),
        (_, admin) if admin.starts_with(crate::admin::PREFIX) => {
            // Here only when [admin] has no listener of its own.
            let settings = app.settings.load();
            let here = settings.admin.as_ref().filter(|a| a.listen.is_none());
            // Boxed: the admin API's future is the largest of all, and
            // would otherwise size (and be copied with) every request's.
            Ok(Box::pin(crate::admin::handle(&app, here, req, peer)).await)
        }
        (&Method::GET | &Method::HEAD, page) if status_page::PATHS.contains(&page) => {
            status_page::asset(page).ok_or_else(|| not_found(page))
        }
        (_, "/v1/check" | "/v1/release" | "/v1/settle") => Ok(not_allowed("POST")),
        (_, "/v1/policies" | "/healthz" | "/readyz" | "/metrics") => Ok(not_allowed("GET")),
        (_, page) if status_page::PATHS.contains(&page) => Ok(not_allowed("GET")),
        _ => Err(not_found(path)),
    };
    Ok(result.unwrap_or_else(error_response))
}

fn not_found(path: &str) -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        message: format!("no route for {path}"),
    }
}

fn not_allowed(allow: &'static str) -> HttpResponse {
    let mut response = error_response(ApiError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        message: format!("method not allowed; use {allow}"),
    });
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// The body of `POST /v1/check`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// The request's attributes.
    #[serde(deserialize_with = "unique_attributes")]
    pub attributes: Attributes,
    /// Cost; absent = 1, 0 = peek.
    #[serde(default = "one")]
    pub hits: u64,
    /// Whether `hits` is an estimate to settle later (`POST /v1/settle`).
    #[serde(default)]
    pub reserve: bool,
    /// How long the caller is willing to wait for its turn, in ms (capped
    /// by the policies' `max_wait`); absent = 0 = never wait.
    #[serde(default)]
    pub max_wait_ms: Option<u64>,
}

fn one() -> u64 {
    1
}

/// Attributes from a JSON object, refusing a name given twice: serde would
/// keep the last value, and a parser in front of floodgate that keeps the
/// first would see another user than the one counted.
pub(crate) fn unique_attributes<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Attributes, D::Error> {
    struct Unique;
    impl<'de> serde::de::Visitor<'de> for Unique {
        type Value = Attributes;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object of string values")
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Attributes, A::Error> {
            use std::collections::btree_map::Entry;
            let mut attributes = Attributes::new();
            while let Some((name, value)) = map.next_entry::<String, String>()? {
                match attributes.entry(name) {
                    Entry::Vacant(vacant) => {
                        vacant.insert(value);
                    }
                    Entry::Occupied(taken) => {
                        let message =
                            format!("attribute {:?} is given more than once", taken.key());
                        return Err(serde::de::Error::custom(message));
                    }
                }
            }
            Ok(attributes)
        }
    }
    deserializer.deserialize_map(Unique)
}

/// The body of `POST /v1/release`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReleaseRequest {
    /// The token a check returned.
    lease: String,
}

/// Parses a JSON object body into `T`.
pub fn parse<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, ApiError> {
    // serde would also accept an array for a struct; callers send objects.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::bad_request(
            "invalid JSON body: expected a JSON object",
        ));
    }
    // Checked once, whole: read from a `str`, serde_json does not check
    // each string again.
    let text = std::str::from_utf8(bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: not UTF-8 ({e})")))?;
    serde_json::from_str(text).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

async fn check(app: &App, req: Request<Incoming>) -> Result<HttpResponse, ApiError> {
    let mut timer = app.check_timer("http", traceparent(req.headers()));
    let bytes = body::read(req).await?;
    let request: CheckRequest = parse(&bytes)?;
    // One snapshot of the settings decides the check and renders its
    // headers: a reload between the two cannot mix them.
    let settings = app.settings.load_full();
    let check = Check {
        attributes: &request.attributes,
        hits: request.hits,
        domain: None,
        reserve: request.reserve,
    };
    timer.attributes(&request.attributes);
    timer.deciding();
    let budget = waiting::asked(request.max_wait_ms, app.limits.request_timeout);
    let waited = app
        .check_waiting(
            &settings.policies,
            &[check],
            floodgate_store::LeaseMode::Held,
            budget,
        )
        .await?;
    let verdict = waited.verdicts.into_iter().next().unwrap_or_default();
    timer.decided(&verdict);
    let status = if verdict.allowed {
        StatusCode::OK
    } else {
        StatusCode::TOO_MANY_REQUESTS
    };
    let deny_status = deny_status(&verdict, settings.policies.policies());
    let body = CheckBody::new(&verdict)
        .with_deny_status(deny_status)
        .with_waited_ms(ms(waited.waited_us));
    let mut response = json_response(status, body.to_json());
    add_headers(&mut response, &verdict, settings.headers);
    timer.finish();
    Ok(response)
}

/// `/v1/auth`, for nginx `auth_request`: 204 allow, 403 deny (nginx
/// accepts only 2xx, 401 and 403 from an auth subrequest), with the
/// rate-limit headers for nginx to copy and, on a denial,
/// `X-Floodgate-Deny-Status` (the deciding policy's `deny_status`, which
/// nginx answers the client with; 400 for a request whose attributes are
/// refused). Attributes come from
/// `X-Original-URI`, `X-Original-Method`, `X-Real-IP` / `X-Forwarded-For`
/// and the user header; without `X-Original-*`, from the request itself.
async fn auth(
    app: &App,
    req: &Request<Incoming>,
    peer: SocketAddr,
) -> Result<HttpResponse, ApiError> {
    let headers = req.headers();
    let mut timer = app.check_timer("nginx", traceparent(headers));
    let settings = app.settings.load();
    if settings.identity.trusted_proxies == 0 && headers.contains_key("x-real-ip") {
        warn_untrusted_real_ip();
    }
    // As bytes: nginx's `$request_uri` may hold any byte ≥ 0x80. The
    // request's own path only when nginx sent no X-Original-URI.
    let method = header_target(headers, "x-original-method");
    let target = header_target(headers, "x-original-uri");
    let info = HttpRequestInfo::from_headers(
        method.as_deref().unwrap_or(req.method().as_str()),
        target.as_deref().unwrap_or(req.uri().path()),
        peer.ip(),
        headers,
        &settings.identity.user_header,
        true,
    );
    app.trace_http_attributes(&mut timer, &settings, &info);
    timer.deciding();
    // nginx says how long it waits for the subrequest (absent: no wait).
    let max_wait_ms = headers
        .get(MAX_WAIT_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let budget = waiting::asked(max_wait_ms, app.limits.request_timeout);
    let checked = app
        .check_http_waiting(
            &settings,
            &info,
            LeaseMode::Skipped("nginx"),
            budget,
            (1, false),
        )
        .await;
    let waited = match checked {
        Ok(waited) => waited,
        // Attributes the client chose (a user header too long, a control
        // character): nginx turns any status but 2xx, 401 and 403 into a
        // 500, so the refusal is a 403 naming 400 for nginx to answer.
        Err(error) if error.is_invalid_input() => {
            tracing::debug!(reason = %error, "/v1/auth: refused the request's attributes");
            let mut response = error_response(error.into());
            *response.status_mut() = StatusCode::FORBIDDEN;
            (response.headers_mut()).insert(DENY_STATUS_HEADER, HeaderValue::from(400u16));
            // The timer is dropped unfinished, as for a refused /v1/check:
            // no check duration, and its span ends as an error.
            return Ok(response);
        }
        Err(error) => return Err(error.into()),
    };
    let verdict = waited.verdicts.into_iter().next().unwrap_or_default();
    timer.decided(&verdict);
    let mut response = empty(if verdict.allowed {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::FORBIDDEN
    });
    add_headers(&mut response, &verdict, settings.headers);
    if !verdict.allowed {
        let status = deny_status(&verdict, settings.policies.policies());
        response
            .headers_mut()
            .insert(DENY_STATUS_HEADER, HeaderValue::from(status));
    }
    timer.finish();
    Ok(response)
}

/// The header of a `/v1/auth` denial naming the status to answer with.
pub const DENY_STATUS_HEADER: &str = "x-floodgate-deny-status";

/// The request's W3C `traceparent` header, if any.
pub fn traceparent(headers: &http::HeaderMap) -> Option<&[u8]> {
    headers
        .get(crate::traces::TRACEPARENT)
        .map(HeaderValue::as_bytes)
}

/// Logs, once per process, that `/v1/auth` ignores `X-Real-IP` because
/// `[identity] trusted_proxies` is 0: every client then counts as nginx's
/// own address.
fn warn_untrusted_real_ip() {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "/v1/auth received X-Real-IP but [identity] trusted_proxies = 0, so it is ignored \
             and every client counts as the proxy's address: set [identity] trusted_proxies = 1 \
             behind nginx"
        );
    }
}

/// Adds the rate-limit headers of `verdict` to `response`.
pub fn add_headers(response: &mut HttpResponse, verdict: &Verdict, mode: HeaderMode) {
    let headers = response.headers_mut();
    // Every value copied into one buffer and split off it as shared
    // bytes: one allocation for all of them, not one per header.
    let mut values = BytesMut::with_capacity(128);
    each_rate_limit_header(verdict, mode, |name, value| {
        values.extend_from_slice(value.as_bytes());
        if let Ok(value) = HeaderValue::from_maybe_shared(values.split().freeze()) {
            headers.insert(name, value);
        }
    });
}

/// Most parts (comma-joined leases) one release may name, over HTTP and
/// gRPC alike: a check returns one part per concurrency policy it charged.
pub const MAX_RELEASE_PARTS: usize = 64;

async fn release(app: &App, req: Request<Incoming>) -> Result<HttpResponse, ApiError> {
    let bytes = body::read(req).await?;
    let request: ReleaseRequest = parse(&bytes)?;
    let parts = request.lease.split(',').count();
    if parts > MAX_RELEASE_PARTS {
        return Err(ApiError::bad_request(format!(
            "lease has {parts} parts: one release takes at most {MAX_RELEASE_PARTS}; \
             nothing was released"
        )));
    }
    app.limiter.release(&request.lease).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

#[derive(Serialize)]
struct Health {
    ok: bool,
}

#[derive(Serialize)]
struct Ready {
    ready: bool,
    store: &'static str,
    policies: usize,
}

fn ready(app: &App) -> HttpResponse {
    json(
        StatusCode::OK,
        &Ready {
            ready: true,
            store: app.limiter.store_mode().as_str(),
            policies: app.limiter.policies().len(),
        },
    )
}

/// One entry of `GET /v1/policies`.
#[derive(Serialize)]
struct PolicyBody<'a> {
    name: &'a str,
    limit: u64,
    window_ms: u64,
    algorithm: &'static str,
    key: &'a [String],
    #[serde(rename = "match")]
    matches: serde_json::Map<String, serde_json::Value>,
    mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    burst: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lease_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fallback: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    domain: Option<&'a str>,
    /// The policies it replaces when it applies, as written.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    replaces: &'a [String],
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    settle: bool,
    deny_status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_wait_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_waiting: Option<u32>,
    /// `"day" | "week" | "month"` of a calendar `fixed_window`.
    #[serde(skip_serializing_if = "Option::is_none")]
    calendar: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timezone: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    block_for_ms: Option<u64>,
    /// With `block_escalation`: the longest block.
    #[serde(skip_serializing_if = "Option::is_none")]
    block_max_ms: Option<u64>,
}

impl<'a> PolicyBody<'a> {
    fn new(p: &'a Policy) -> Self {
        use floodgate_core::AlgorithmKind::{Concurrency, TokenBucket};
        let matches = p
            .matches()
            .iter()
            .map(|(name, values)| {
                let value = match values.as_slice() {
                    [one] => serde_json::Value::from(one.as_str()),
                    many => serde_json::Value::from(many.to_vec()),
                };
                (name.clone(), value)
            })
            .collect();
        PolicyBody {
            name: p.name(),
            limit: p.limit(),
            window_ms: if p.kind() == Concurrency {
                0
            } else {
                p.window_us() / 1_000
            },
            algorithm: p.kind().as_str(),
            key: p.key(),
            matches,
            mode: match p.mode() {
                floodgate_core::Mode::Enforce => "enforce",
                floodgate_core::Mode::Shadow => "shadow",
            },
            burst: (p.kind() == TokenBucket).then_some(p.burst()),
            lease_timeout_ms: (p.kind() == Concurrency).then_some(p.window_us() / 1_000),
            fallback: p.fallback().map(|f| f.as_str()),
            domain: p.domain(),
            replaces: p.replaces(),
            settle: p.settle(),
            deny_status: p.deny_status(),
            max_wait_ms: (p.waiting().max_wait_us > 0).then_some(p.waiting().max_wait_us / 1_000),
            max_waiting: (p.waiting().max_wait_us > 0).then_some(p.waiting().max_waiting),
            calendar: p.calendar().map(|c| c.period().as_str()),
            timezone: p.calendar().map(|c| c.zone()),
            block_for_ms: p.block().is_on().then_some(p.block().for_us / 1_000),
            block_max_ms: p.block().escalates().then_some(p.block().max_us / 1_000),
        }
    }
}

fn policies(app: &App) -> HttpResponse {
    #[derive(Serialize)]
    struct Policies<'a> {
        policies: Vec<PolicyBody<'a>>,
    }
    let set = app.limiter.policies();
    json(
        StatusCode::OK,
        &Policies {
            policies: set.iter().map(|p| PolicyBody::new(p)).collect(),
        },
    )
}

/// `GET /metrics`: the exporter's metrics and the check-duration histogram.
fn metrics(app: &App) -> HttpResponse {
    let mut text = app.metrics.render();
    crate::telemetry::latency::CHECK_DURATION.render(&mut text);
    let mut response = Response::new(Full::new(Bytes::from(text)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// A JSON response of `value` with `status`.
pub(crate) fn json<T: Serialize>(status: StatusCode, value: &T) -> HttpResponse {
    // Serializing these plain structs cannot fail.
    json_response(status, serde_json::to_vec(value).unwrap_or_default())
}

fn empty(status: StatusCode) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}
