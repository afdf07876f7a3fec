//! `envoy.service.auth.v3.Authorization`: Envoy's ext_authz. Attributes
//! come from the HTTP request Envoy describes; a denial is an HTTP response
//! (the deciding policy's `deny_status`, 429 by default) that Envoy sends to
//! the client, with `Retry-After` and the RateLimit headers.
//!
//! A request without HTTP attributes is allowed (with a warning, logged and
//! counted in `floodgate_ext_authz_incomplete_total`): a misconfigured filter
//! must not take the site down.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use floodgate_proto::envoy::config::core::v3::{
    address, header_value_option::HeaderAppendAction, HeaderValue, HeaderValueOption,
};
use floodgate_proto::envoy::r#type::v3::{HttpStatus, StatusCode};
use floodgate_proto::envoy::service::auth::v3 as authz;
use floodgate_proto::google::rpc;
use floodgate_store::{LeaseMode, LimitError, Verdict};
use tonic::{Request, Response, Status};

use super::{envoy_budget, traceparent};
use crate::app::{App, Settings};
use crate::deny::deny_status;
use crate::errors::to_status;
use crate::identity::{HttpRequestInfo, RequestHeaders};
use crate::render::{each_rate_limit_header, error_json, CheckBody};

/// gRPC status codes used in `CheckResponse.status`.
const OK: i32 = 0;
const INVALID_ARGUMENT: i32 = 3;
const RESOURCE_EXHAUSTED: i32 = 8;

/// The ext_authz gRPC service.
pub struct AuthzService {
    /// Shared state.
    app: Arc<App>,
}

impl AuthzService {
    /// The service over `app`.
    pub fn new(app: Arc<App>) -> Self {
        AuthzService { app }
    }
}

fn header(key: &str, value: String) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: key.to_string(),
            value,
            raw_value: Vec::new(),
        }),
        append: None,
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        keep_empty_value: false,
    }
}

fn allow(headers: Vec<HeaderValueOption>) -> authz::CheckResponse {
    authz::CheckResponse {
        status: Some(rpc::Status {
            code: OK,
            message: String::new(),
        }),
        http_response: Some(authz::check_response::HttpResponse::OkResponse(
            authz::OkHttpResponse {
                response_headers_to_add: headers,
                ..authz::OkHttpResponse::default()
            },
        )),
    }
}

fn deny(
    code: i32,
    status: StatusCode,
    mut headers: Vec<HeaderValueOption>,
    body: String,
) -> authz::CheckResponse {
    headers.push(header("content-type", "application/json".into()));
    authz::CheckResponse {
        status: Some(rpc::Status {
            code,
            message: String::new(),
        }),
        http_response: Some(authz::check_response::HttpResponse::DeniedResponse(
            authz::DeniedHttpResponse {
                status: Some(HttpStatus {
                    code: status as i32,
                }),
                headers,
                body,
            },
        )),
    }
}

/// `status` as Envoy's `StatusCode`; 429 for a status Envoy's enum does
/// not name (Envoy accepts only those).
fn envoy_status(status: u16) -> StatusCode {
    StatusCode::try_from(i32::from(status)).unwrap_or(StatusCode::TooManyRequests)
}

/// The socket address of a peer, when it is an IP address.
pub fn peer_ip(peer: Option<&authz::attribute_context::Peer>) -> Option<IpAddr> {
    match peer?.address.as_ref()?.address.as_ref()? {
        address::Address::SocketAddress(s) => s.address.parse().ok(),
        address::Address::Pipe(_) => None,
    }
}

/// What an ext_authz request says about the HTTP request it authorises:
/// the source peer's address, `X-Forwarded-For`, the `user_header` and
/// every header (for `[identity] attributes` and `[identity.jwt]`; never
/// `X-Real-IP`: a client could set it).
pub fn request_info<'a>(
    context: &'a authz::AttributeContext,
    http: &'a authz::attribute_context::HttpRequest,
    user_header: &str,
) -> HttpRequestInfo<'a> {
    HttpRequestInfo {
        method: &http.method,
        target: &http.path,
        peer: peer_ip(context.source.as_ref()),
        // Envoy sends repeated header lines merged into one, in order.
        forwarded_for: http
            .headers
            .get("x-forwarded-for")
            .map(|v| Cow::Borrowed(v.as_str())),
        real_ip: None,
        user: http.headers.get(user_header).map(String::as_str),
        headers: RequestHeaders::Envoy(&http.headers),
    }
}

/// The client's `traceparent`, as Envoy forwards the request's headers.
fn client_traceparent(request: &authz::CheckRequest) -> Option<&[u8]> {
    (request.attributes.as_ref())
        .and_then(|a| a.request.as_ref())
        .and_then(|r| r.http.as_ref())
        .and_then(|h| h.headers.get("traceparent"))
        .map(String::as_bytes)
}

/// The answer to a request without HTTP attributes: allowed, with a
/// warning logged and counted.
fn incomplete() -> authz::CheckResponse {
    tracing::warn!("ext_authz request without HTTP attributes: allowed unchecked");
    metrics::counter!(floodgate_core::metric::EXT_AUTHZ_INCOMPLETE_TOTAL).increment(1);
    allow(Vec::new())
}

/// The answer to attributes the limiter rejects: 400 with the JSON error.
fn invalid(message: &str) -> authz::CheckResponse {
    let body = String::from_utf8(error_json(message)).unwrap_or_default();
    deny(INVALID_ARGUMENT, StatusCode::BadRequest, Vec::new(), body)
}

/// The answer to a decided request: allowed with the rate-limit headers,
/// or denied with the deciding policy's `deny_status`, those headers and
/// the check's JSON body.
fn decided(verdict: &Verdict, settings: &Settings) -> authz::CheckResponse {
    let mut headers = Vec::with_capacity(4);
    each_rate_limit_header(verdict, settings.headers, |name, value| {
        headers.push(header(name.as_str(), value.to_string()));
    });
    if verdict.allowed {
        return allow(headers);
    }
    let status = deny_status(verdict, settings.policies.policies());
    let body = CheckBody::new(verdict).with_deny_status(status);
    let body = String::from_utf8(body.to_json()).unwrap_or_default();
    deny(RESOURCE_EXHAUSTED, envoy_status(status), headers, body)
}

#[tonic::async_trait]
impl authz::authorization_server::Authorization for AuthzService {
    async fn check(
        &self,
        request: Request<authz::CheckRequest>,
    ) -> Result<Response<authz::CheckResponse>, Status> {
        // Envoy's own span (gRPC metadata) if it sent one, else the
        // client's.
        let trace = traceparent(&request).or(client_traceparent(request.get_ref()));
        let mut timer = self.app.check_timer("envoy_authz", trace);
        let budget = envoy_budget(&self.app, &request);
        let context = request.into_inner().attributes.unwrap_or_default();
        let Some(http) = context.request.as_ref().and_then(|r| r.http.as_ref()) else {
            return Ok(Response::new(incomplete()));
        };
        let settings = self.app.settings.load();
        let info = request_info(&context, http, &settings.identity.user_header);
        self.app.trace_http_attributes(&mut timer, &settings, &info);
        timer.deciding();
        // No "request finished" callback: concurrency policies are skipped.
        let waited = self
            .app
            .check_http_waiting(
                &settings,
                &info,
                LeaseMode::Skipped("envoy_authz"),
                budget,
                (1, false),
            )
            .await;
        let verdict = match waited {
            Ok(waited) => waited.verdicts.into_iter().next().unwrap_or_default(),
            Err(LimitError::InvalidAttributes(error)) => {
                return Ok(Response::new(invalid(&error.to_string())));
            }
            Err(error) => return Err(to_status(error)),
        };
        timer.decided(&verdict);
        let response = decided(&verdict, &settings);
        timer.finish();
        Ok(Response::new(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use floodgate_proto::envoy::config::core::v3::{Address, SocketAddress};

    #[test]
    fn envoy_status_keeps_the_codes_envoy_names() {
        assert_eq!(envoy_status(503), StatusCode::ServiceUnavailable);
        assert_eq!(envoy_status(429), StatusCode::TooManyRequests);
        // Envoy's enum has no 499.
        assert_eq!(envoy_status(499), StatusCode::TooManyRequests);
    }

    #[test]
    fn request_info_reads_the_source_forwarded_for_and_user_but_never_x_real_ip() {
        let http = authz::attribute_context::HttpRequest {
            method: "POST".into(),
            path: "/api/chat/x?q".into(),
            headers: [
                ("x-forwarded-for", "198.51.100.1, 203.0.113.7"),
                ("x-real-ip", "192.0.2.99"),
                ("x-user-id", "u1"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            ..Default::default()
        };
        let source = authz::attribute_context::Peer {
            address: Some(Address {
                address: Some(address::Address::SocketAddress(SocketAddress {
                    address: "10.0.0.9".into(),
                    ..Default::default()
                })),
            }),
            ..Default::default()
        };
        let context = authz::AttributeContext {
            source: Some(source),
            ..Default::default()
        };
        let info = request_info(&context, &http, "x-user-id");
        assert_eq!((info.method, info.target), ("POST", "/api/chat/x?q"));
        assert_eq!(info.peer, "10.0.0.9".parse().ok());
        assert_eq!(
            info.forwarded_for.as_deref(),
            Some("198.51.100.1, 203.0.113.7")
        );
        assert_eq!(info.real_ip, None);
        assert_eq!(info.user, Some("u1"));
        assert_eq!(request_info(&context, &http, "x-other").user, None);
    }
}
