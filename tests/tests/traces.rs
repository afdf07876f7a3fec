//! OpenTelemetry traces, received by in-test OTLP collectors (HTTP/protobuf
//! and gRPC) from the real binary: one `floodgate.check` span per check,
//! child of the caller's `traceparent`, with a `floodgate.decide` child;
//! the caller's "not sampled" is followed; attribute values appear only
//! when `[traces] attributes` allows them.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use floodgate_e2e::raw_http::{read_request_head, upstream};
use floodgate_e2e::{http_request, Floodgate, FREE_PORTS};
use floodgate_proto::envoy::service::auth::v3 as authz;
use floodgate_proto::floodgate::v1::rate_limiter_client::RateLimiterClient;
use floodgate_proto::floodgate::v1::CheckRequest;
use floodgate_proto::opentelemetry::proto::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use floodgate_proto::opentelemetry::proto::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use floodgate_proto::opentelemetry::proto::common::v1::{any_value, KeyValue};
use floodgate_proto::opentelemetry::proto::trace::v1::Span;
use prost::Message;

const POLICY: &str = "[[policy]]\nname = \"ai-per-user\"\nmatch = { endpoint = \"ai\" }\nkey = [\"user\"]\nlimit = 1\nwindow = \"1h\"\n";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";
/// Batches go out every 50 ms instead of every 5 s.
const FAST: [(&str, &str); 1] = [("OTEL_BSP_SCHEDULE_DELAY", "50")];

type Received = Arc<Mutex<Vec<ExportTraceServiceRequest>>>;

/// An OTLP/HTTP collector: every POSTed body decoded, answered 200. Each
/// collector has its own list (tests run in parallel).
fn http_collector() -> (std::net::SocketAddr, Received) {
    let received = Received::default();
    // `upstream` takes a `Copy` handler: a leaked reference to this
    // collector's list is one (a few bytes per test process).
    let list: &'static Received = Box::leak(Box::new(received.clone()));
    let serve = move |mut stream: TcpStream| loop {
        let head = read_request_head(&mut stream).to_ascii_lowercase();
        if head.is_empty() {
            return;
        }
        assert!(head.starts_with("post /v1/traces "), "{head}");
        assert!(
            head.contains("content-type: application/x-protobuf"),
            "{head}"
        );
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .and_then(|n| n.trim().parse().ok())
            .expect("content-length");
        let mut body = vec![0; length];
        stream.read_exact(&mut body).unwrap();
        let request = ExportTraceServiceRequest::decode(&body[..]).expect("OTLP protobuf");
        list.lock().unwrap().push(request);
        let _ = stream.write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n",
        );
    };
    (upstream(serve), received)
}

/// Every span received so far.
fn spans(received: &Received) -> Vec<Span> {
    received
        .lock()
        .unwrap()
        .iter()
        .flat_map(|r| &r.resource_spans)
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| s.spans.clone())
        .collect()
}

/// Waits until `count` spans have arrived.
fn wait_for(received: &Received, count: usize) -> Vec<Span> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = spans(received);
        if found.len() >= count || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn text(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a: &KeyValue| match a.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.clone()),
            _ => None,
        })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn check_with(fg: &Floodgate, user: &str, traceparent: Option<&str>) -> u16 {
    let body = format!(r#"{{"attributes": {{"user": "{user}", "endpoint": "ai"}}}}"#);
    let headers: Vec<(&str, &str)> = traceparent
        .map(|t| ("traceparent", t))
        .into_iter()
        .collect();
    http_request(
        fg.http,
        "POST",
        "/v1/check",
        &headers,
        Some(body.as_bytes()),
    )
    .status
}

#[test]
fn http_checks_join_the_callers_trace_and_carry_only_allowed_values() {
    let (collector, received) = http_collector();
    let fg = Floodgate::start_env(
        &format!("{FREE_PORTS}[traces]\nendpoint = \"http://{collector}/v1/traces\"\nattributes = [\"endpoint\"]\nservice_name = \"edge-1\"\n{POLICY}"),
        &[],
        &FAST,
    );
    let traceparent = format!("00-{TRACE_ID}-{PARENT_ID}-01");
    assert_eq!(check_with(&fg, "secret-user", Some(&traceparent)), 200);
    assert_eq!(check_with(&fg, "secret-user", Some(&traceparent)), 429);
    let found = wait_for(&received, 4);
    assert_eq!(found.len(), 4, "{found:#?}");
    let checks: Vec<&Span> = found
        .iter()
        .filter(|s| s.name == "floodgate.check")
        .collect();
    let decides: Vec<&Span> = found
        .iter()
        .filter(|s| s.name == "floodgate.decide")
        .collect();
    assert_eq!((checks.len(), decides.len()), (2, 2), "{found:#?}");
    for check in &checks {
        assert_eq!(hex(&check.trace_id), TRACE_ID);
        assert_eq!(hex(&check.parent_span_id), PARENT_ID);
        assert_eq!(check.span_id.len(), 8);
        assert!(check.end_time_unix_nano >= check.start_time_unix_nano);
        assert_eq!(text(check, "floodgate.transport").as_deref(), Some("http"));
        assert_eq!(
            text(check, "floodgate.policy").as_deref(),
            Some("ai-per-user")
        );
        assert_eq!(
            text(check, "floodgate.attribute.endpoint").as_deref(),
            Some("ai")
        );
        let child = decides
            .iter()
            .find(|d| d.parent_span_id == check.span_id)
            .expect("a decide span under each check span");
        assert_eq!(child.trace_id, check.trace_id);
        assert_eq!(text(child, "floodgate.source").as_deref(), Some("local"));
    }
    let decisions: Vec<String> = checks
        .iter()
        .filter_map(|s| text(s, "floodgate.decision"))
        .collect();
    assert!(decisions.contains(&"allowed".into()) && decisions.contains(&"denied".into()));
    // The user's value is not allowed on spans: it appears nowhere.
    let everything = format!("{:?}", received.lock().unwrap());
    assert!(
        !everything.contains("secret-user"),
        "a user id leaked onto a span"
    );
    let resource = &received.lock().unwrap()[0].resource_spans[0];
    let service = resource.resource.as_ref().unwrap().attributes.iter();
    assert!(service.clone().any(|a| a.key == "service.name"
        && matches!(&a.value.as_ref().unwrap().value, Some(any_value::Value::StringValue(s)) if s == "edge-1")));
}

#[test]
fn an_unsampled_caller_is_followed_and_a_bad_traceparent_starts_a_new_trace() {
    let (collector, received) = http_collector();
    let fg = Floodgate::start_env(
        &format!("{FREE_PORTS}[traces]\nendpoint = \"http://{collector}/v1/traces\"\n{POLICY}"),
        &[],
        &FAST,
    );
    check_with(&fg, "u1", Some(&format!("00-{TRACE_ID}-{PARENT_ID}-00")));
    check_with(&fg, "u2", Some("00-not-a-valid-traceparent"));
    let found = wait_for(&received, 2);
    std::thread::sleep(Duration::from_millis(300));
    let found = if found.len() > 2 {
        found
    } else {
        spans(&received)
    };
    assert_eq!(
        found.len(),
        2,
        "only the second check is traced: {found:#?}"
    );
    let check = found.iter().find(|s| s.name == "floodgate.check").unwrap();
    assert!(check.parent_span_id.is_empty(), "a new root span");
    assert_ne!(hex(&check.trace_id), TRACE_ID);
    assert_eq!(text(check, "floodgate.attribute.user"), None);
}

struct GrpcCollector(Received);

#[tonic::async_trait]
impl TraceService for GrpcCollector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_checks_are_exported_over_otlp_grpc_set_by_the_environment() {
    let received = Received::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector = listener.local_addr().unwrap();
    let service = TraceServiceServer::new(GrpcCollector(received.clone()));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let endpoint = format!("http://{collector}");
    let fg = Floodgate::start_env(
        &format!("{FREE_PORTS}{POLICY}"),
        &[],
        &[
            FAST[0],
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ],
    );
    let mut client = RateLimiterClient::connect(fg.grpc_uri()).await.unwrap();
    let mut request = tonic::Request::new(CheckRequest {
        attributes: [("user", "u1"), ("endpoint", "ai")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    });
    let traceparent = format!("00-{TRACE_ID}-{PARENT_ID}-01");
    request
        .metadata_mut()
        .insert("traceparent", traceparent.parse().unwrap());
    assert!(client.check(request).await.unwrap().into_inner().allowed);
    let found = tokio::task::spawn_blocking(move || wait_for(&received, 2))
        .await
        .unwrap();
    let check = found
        .iter()
        .find(|s| s.name == "floodgate.check")
        .unwrap_or_else(|| panic!("{found:#?}"));
    assert_eq!(hex(&check.trace_id), TRACE_ID);
    assert_eq!(hex(&check.parent_span_id), PARENT_ID);
    assert_eq!(text(check, "floodgate.transport").as_deref(), Some("grpc"));
    assert_eq!(text(check, "floodgate.attribute.user"), None);
}

#[test]
fn a_collector_that_is_down_never_slows_or_fails_a_check() {
    // Nothing listens there: exports fail, checks do not.
    let port = floodgate_e2e::free_port();
    let fg = Floodgate::start_env(
        &format!(
            "{FREE_PORTS}[traces]\nendpoint = \"http://127.0.0.1:{port}/v1/traces\"\n{POLICY}"
        ),
        &[],
        &FAST,
    );
    let statuses: Vec<u16> = (0..3).map(|_| check_with(&fg, "u1", None)).collect();
    assert_eq!(statuses, [200, 429, 429]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !fg.log.lock().unwrap().contains("could not export spans") {
        assert!(
            Instant::now() < deadline,
            "no export warning: {}",
            fg.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let metrics = http_request(fg.http, "GET", "/metrics", &[], None);
    assert!(String::from_utf8_lossy(&metrics.body).contains("floodgate_trace_spans_dropped_total"));
}

#[test]
fn bad_otel_variables_stop_the_start_with_a_clear_error() {
    let out = std::process::Command::new(floodgate_e2e::binary())
        .args(["serve", "--config", "/dev/null"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("OTEL_EXPORTER_OTLP_PROTOCOL=\"http/json\""),
        "{stderr}"
    );
}

/// An ext_authz check of `GET /` with the forwarded request `headers`.
fn authz_request(headers: &[(&str, &str)]) -> authz::CheckRequest {
    authz::CheckRequest {
        attributes: Some(authz::AttributeContext {
            request: Some(authz::attribute_context::Request {
                http: Some(authz::attribute_context::HttpRequest {
                    method: "GET".into(),
                    path: "/".into(),
                    headers: headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ext_authz_follows_envoys_span_else_the_forwarded_client_header() {
    let (collector, received) = http_collector();
    let fg = Floodgate::start_env(
        &format!("{FREE_PORTS}[traces]\nendpoint = \"http://{collector}/v1/traces\"\n{POLICY}"),
        &[],
        &FAST,
    );
    let mut client = authz::authorization_client::AuthorizationClient::connect(fg.grpc_uri())
        .await
        .unwrap();
    let sampled = format!("00-{TRACE_ID}-{PARENT_ID}-01");
    // Envoy said "not sampled" in its metadata: followed, whatever the
    // client's header says.
    let mut request = tonic::Request::new(authz_request(&[("traceparent", &sampled)]));
    let unsampled = format!("00-{TRACE_ID}-{PARENT_ID}-00");
    request
        .metadata_mut()
        .insert("traceparent", unsampled.parse().unwrap());
    client.check(request).await.unwrap();
    // No metadata: the client's forwarded header is the parent.
    let request = tonic::Request::new(authz_request(&[("traceparent", &sampled)]));
    client.check(request).await.unwrap();
    let found = tokio::task::spawn_blocking(move || {
        let found = wait_for(&received, 2);
        std::thread::sleep(Duration::from_millis(300));
        if found.len() > 2 {
            found
        } else {
            spans(&received)
        }
    })
    .await
    .unwrap();
    assert_eq!(
        found.len(),
        2,
        "only the second check is traced: {found:#?}"
    );
    let check = found.iter().find(|s| s.name == "floodgate.check").unwrap();
    assert_eq!(hex(&check.trace_id), TRACE_ID);
    assert_eq!(hex(&check.parent_span_id), PARENT_ID);
    assert_eq!(
        text(check, "floodgate.transport").as_deref(),
        Some("envoy_authz")
    );
}
