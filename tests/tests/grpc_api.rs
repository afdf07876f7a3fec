//! floodgate.v1 Check/Release, health and reflection over real gRPC.

use floodgate_e2e::{Floodgate, FREE_PORTS};
use floodgate_proto::floodgate::v1::rate_limiter_client::RateLimiterClient;
use floodgate_proto::floodgate::v1::{CheckRequest, ReleaseRequest, Source};
use tonic::Code;

fn config() -> String {
    format!(
        r#"{FREE_PORTS}
[[policy]]
name = "ai-per-user"
match = {{ endpoint = "ai" }}
key = ["user"]
limit = 500
window = "1m"

[[policy]]
name = "llm-inflight"
match = {{ endpoint = "llm" }}
key = ["user"]
limit = 1
algorithm = "concurrency"
"#
    )
}

fn request(pairs: &[(&str, &str)], hits: Option<u64>) -> CheckRequest {
    CheckRequest {
        attributes: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        hits,
        ..CheckRequest::default()
    }
}

#[tokio::test]
async fn six_hundred_checks_give_exactly_500_allowed() {
    let fg = Floodgate::start(&config());
    let mut client = RateLimiterClient::connect(fg.grpc_uri()).await.unwrap();
    let mut allowed = 0;
    let mut last = None;
    for _ in 0..600 {
        let r = client
            .check(request(&[("user", "u1"), ("endpoint", "ai")], None))
            .await
            .unwrap()
            .into_inner();
        if r.allowed {
            allowed += 1;
        } else {
            last = Some(r);
        }
    }
    assert_eq!(allowed, 500);
    let denied = last.unwrap();
    assert_eq!(denied.policy, "ai-per-user");
    assert_eq!(denied.limit, 500);
    assert_eq!(denied.remaining, 0);
    assert!(denied.retry_after_ms > 0);
    assert_eq!(denied.statuses.len(), 1);
    assert_eq!(denied.statuses[0].source, Source::Local as i32);
    // Peek: hits = 0 charges nothing.
    let peek = client
        .check(request(&[("user", "u9"), ("endpoint", "ai")], Some(0)))
        .await
        .unwrap()
        .into_inner();
    assert!(peek.allowed);
    assert_eq!(peek.remaining, 500);
}

#[tokio::test]
async fn leases_and_bad_input() {
    let fg = Floodgate::start(&config());
    let mut client = RateLimiterClient::connect(fg.grpc_uri()).await.unwrap();
    let llm = request(&[("user", "u1"), ("endpoint", "llm")], None);
    let first = client.check(llm.clone()).await.unwrap().into_inner();
    assert!(first.allowed);
    assert!(!first.lease.is_empty());
    assert!(
        !client
            .check(llm.clone())
            .await
            .unwrap()
            .into_inner()
            .allowed
    );
    client
        .release(ReleaseRequest { lease: first.lease })
        .await
        .unwrap();
    assert!(client.check(llm).await.unwrap().into_inner().allowed);

    let err = client
        .release(ReleaseRequest {
            lease: "garbage".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    // At most 64 comma-joined parts, as over HTTP; nothing is released.
    let err = client
        .release(ReleaseRequest {
            lease: vec!["x"; 65].join(","),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("at most 64"), "{}", err.message());
    let long = "x".repeat(300);
    let err = client
        .check(request(&[("user", &long), ("endpoint", "ai")], None))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("300 bytes"), "{}", err.message());
    let err = client
        .check(request(&[("user", "a\nb")], None))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn malformed_protobuf_is_refused() {
    let fg = Floodgate::start(FREE_PORTS);
    let channel = tonic::transport::Endpoint::from_shared(fg.grpc_uri())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    // Field 1 (attributes map) declared length-delimited with a length past the end.
    let garbage = bytes::Bytes::from_static(&[0x0a, 0x7f, 0x01]);
    let err = grpc
        .unary::<_, bytes::Bytes, _>(
            tonic::Request::new(garbage),
            "/floodgate.v1.RateLimiter/Check".parse().unwrap(),
            floodgate_e2e::RawCodec,
        )
        .await
        .unwrap_err();
    // The caller's fault, with the decoder's reason: never INTERNAL.
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("decode"), "{}", err.message());
}

#[tokio::test]
async fn health_and_reflection() {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    let fg = Floodgate::start(FREE_PORTS);
    let channel = tonic::transport::Endpoint::from_shared(fg.grpc_uri())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel.clone());
    for service in ["", "floodgate.v1.RateLimiter"] {
        let r = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.status, 1, "{service} SERVING");
    }

    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    let mut reflection = ServerReflectionClient::new(channel);
    let requests = tokio_stream_once(ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    });
    let mut responses = reflection
        .server_reflection_info(requests)
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection answer");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"floodgate.v1.RateLimiter".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_string()),
        "{names:?}"
    );
}

/// A request stream of one message.
fn tokio_stream_once<T: Send + 'static>(
    item: T,
) -> impl tonic::codegen::tokio_stream::Stream<Item = T> {
    tonic::codegen::tokio_stream::iter(vec![item])
}

/// A health `Watch` the client keeps open ends with CANCELLED at
/// `grpc_timeout`, like a unary call, so it cannot hold its connection:
/// with one connection allowed, a second client is answered once the
/// first, its stream ended, has been idle for `idle_timeout`.
#[tokio::test]
async fn a_stream_the_client_keeps_open_ends_at_grpc_timeout() {
    use std::time::{Duration, Instant};
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    let fg = Floodgate::start(&format!(
        "{FREE_PORTS}grpc_timeout = \"1s\"\nidle_timeout = \"2s\"\nmax_connections = 1\n"
    ));
    let watcher = tonic::transport::Endpoint::from_shared(fg.grpc_uri())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let started = Instant::now();
    let mut watch = HealthClient::new(watcher.clone())
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(watch.message().await.unwrap().unwrap().status, 1, "SERVING");
    let ended = tokio::time::timeout(Duration::from_secs(10), watch.message())
        .await
        .expect("the stream ends by itself");
    assert_eq!(ended.unwrap_err().code(), Code::Cancelled);
    assert!(started.elapsed() >= Duration::from_millis(900));
    // The watcher's connection stays open on its side; a second client
    // gets the one connection slot once the server has closed it.
    let mut other = RateLimiterClient::connect(fg.grpc_uri()).await.unwrap();
    let answered = tokio::time::timeout(
        Duration::from_secs(10),
        other.check(request(&[("user", "u1"), ("endpoint", "ai")], None)),
    )
    .await
    .expect("answered once the idle watcher's connection is closed");
    assert!(answered.unwrap().into_inner().allowed);
    drop(watcher);
}
