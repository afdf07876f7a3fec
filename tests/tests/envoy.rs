//! Envoy's rate limit service and ext_authz, over real gRPC, including
//! requests encoded byte by byte as Envoy puts them on the wire, so a wrong
//! field number in our proto subsets fails here.

use bytes::{BufMut, Bytes};
use floodgate_e2e::{Floodgate, FREE_PORTS};
use floodgate_proto::envoy::config::core::v3::{address, Address, SocketAddress};
use floodgate_proto::envoy::extensions::common::ratelimit::v3::{
    rate_limit_descriptor::Entry, RateLimitDescriptor,
};
use floodgate_proto::envoy::service::auth::v3 as authz;
use floodgate_proto::envoy::service::ratelimit::v3 as rls;
use prost::Message;
use rls::rate_limit_response::Code;
use rls::rate_limit_service_client::RateLimitServiceClient;
use tonic::Code as GrpcCode;

fn config() -> String {
    format!(
        r#"{FREE_PORTS}
[identity]
user_header = "x-user-id"

[[endpoint]]
name = "ai"
path = "/api/chat/*"
methods = ["POST"]

[[policy]]
name = "edge-per-ip"
domain = "edge"
key = ["ip"]
limit = 10
window = "1m"

[[policy]]
name = "edge-per-tenant"
domain = "edge"
key = ["tenant"]
limit = 2
window = "1m"
algorithm = "fixed_window"

[[policy]]
name = "other-domain"
domain = "other"
key = ["ip"]
limit = 1
window = "1m"

[[policy]]
name = "ai-per-user"
match = {{ endpoint = "ai" }}
key = ["user"]
limit = 3
window = "1m"
"#
    )
}

fn descriptor(entries: &[(&str, &str)], hits: Option<u64>) -> RateLimitDescriptor {
    RateLimitDescriptor {
        entries: entries
            .iter()
            .map(|(k, v)| Entry {
                key: k.to_string(),
                value: v.to_string(),
            })
            .collect(),
        limit: None,
        hits_addend: hits,
    }
}

async fn rls_client(fg: &Floodgate) -> RateLimitServiceClient<tonic::transport::Channel> {
    RateLimitServiceClient::connect(fg.grpc_uri())
        .await
        .unwrap()
}

#[tokio::test]
async fn descriptors_domains_hits_and_headers() {
    let fg = Floodgate::start(&config());
    let mut client = rls_client(&fg).await;
    let response = client
        .should_rate_limit(rls::RateLimitRequest {
            domain: "edge".into(),
            descriptors: vec![
                descriptor(&[("remote_address", "10.0.0.1")], None),
                descriptor(&[("unknown", "x")], None),
                descriptor(&[("remote_address", "10.0.0.1")], Some(4)),
            ],
            hits_addend: 2,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.overall_code, Code::Ok as i32);
    assert_eq!(response.statuses.len(), 3);
    let first = &response.statuses[0];
    let limit = first.current_limit.as_ref().unwrap();
    assert_eq!(limit.name, "edge-per-ip");
    assert_eq!(limit.requests_per_unit, 10);
    assert_eq!(
        limit.unit,
        rls::rate_limit_response::rate_limit::Unit::Minute as i32
    );
    // The request-level hits_addend (2) charged the first descriptor …
    assert_eq!(first.limit_remaining, 8);
    assert!(first.duration_until_reset.unwrap().seconds <= 60);
    // … a descriptor no policy matches is OK with no limit …
    assert_eq!(response.statuses[1].code, Code::Ok as i32);
    assert!(response.statuses[1].current_limit.is_none());
    // … and the descriptor-level hits_addend (4) overrides it.
    assert_eq!(response.statuses[2].limit_remaining, 4);
    let names: Vec<_> = response
        .response_headers_to_add
        .iter()
        .map(|h| h.key.as_str())
        .collect();
    assert_eq!(names, ["ratelimit-policy", "ratelimit"]);

    // Over the limit: OVER_LIMIT, and the other descriptor is not charged.
    let over = |tenant_hits| rls::RateLimitRequest {
        domain: "edge".into(),
        descriptors: vec![
            descriptor(&[("remote_address", "10.0.0.2")], None),
            descriptor(&[("tenant", "acme")], Some(tenant_hits)),
        ],
        hits_addend: 0,
    };
    let denied = client
        .should_rate_limit(over(3))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(denied.overall_code, Code::OverLimit as i32);
    assert_eq!(denied.statuses[0].code, Code::Ok as i32);
    assert_eq!(denied.statuses[1].code, Code::OverLimit as i32);
    assert!(denied
        .response_headers_to_add
        .iter()
        .any(|h| h.key == "retry-after"));
    let ok = client
        .should_rate_limit(over(2))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.overall_code, Code::Ok as i32);
    // Only the allowed request counted against 10.0.0.2: 10 − 1.
    assert_eq!(ok.statuses[0].limit_remaining, 9);

    // Policies of another domain are not applied; policies without a
    // domain are (ai-per-user needs endpoint and user here).
    let other = client
        .should_rate_limit(rls::RateLimitRequest {
            domain: "nobody".into(),
            descriptors: vec![descriptor(&[("remote_address", "10.0.0.3")], None)],
            hits_addend: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(other.statuses[0].current_limit.is_none());
}

/// Envoy's `remote_address` is keyed like every address floodgate derives:
/// the addresses of one IPv6 /56 (the default `ipv6_prefix`) share a
/// counter, an IPv4-mapped address is its IPv4 address.
#[tokio::test]
async fn remote_address_is_keyed_by_its_ipv6_network_on_rls() {
    let fg = Floodgate::start(&config());
    let mut client = rls_client(&fg).await;
    let mut remaining = Vec::new();
    for address in [
        "2001:db8:0:1aa::1",
        "2001:db8:0:1bb::2",
        "2001:db8:0:1ff:ffff::3",
        "2001:db8:0:200::1",
        "::ffff:192.0.2.1",
        "192.0.2.1",
    ] {
        let response = client
            .should_rate_limit(rls::RateLimitRequest {
                domain: "edge".into(),
                descriptors: vec![descriptor(&[("remote_address", address)], None)],
                hits_addend: 0,
            })
            .await
            .unwrap()
            .into_inner();
        remaining.push(response.statuses[0].limit_remaining);
    }
    // edge-per-ip allows 10 a minute: one network, then another, then one
    // IPv4 address written two ways.
    assert_eq!(remaining, [9, 8, 7, 9, 9, 8]);
}

#[tokio::test]
async fn bad_rate_limit_requests_are_invalid_argument() {
    let fg = Floodgate::start(&config());
    let mut client = rls_client(&fg).await;
    let cases = [
        (
            String::new(),
            vec![descriptor(&[("a", "b")], None)],
            "domain",
        ),
        ("edge".to_string(), vec![], "no descriptors"),
        (
            "edge".to_string(),
            vec![descriptor(&[], None)],
            "no entries",
        ),
        (
            "edge".to_string(),
            vec![descriptor(&[("", "b")], None)],
            "empty key",
        ),
        (
            "edge".to_string(),
            vec![descriptor(&[("remote_address", "1.1.1.1")], Some(u64::MAX))],
            "too large",
        ),
        (
            "edge".to_string(),
            vec![descriptor(&[("ip", "1"), ("remote_address", "2")], None)],
            "twice",
        ),
    ];
    for (domain, descriptors, reason) in cases {
        let err = client
            .should_rate_limit(rls::RateLimitRequest {
                domain,
                descriptors,
                hits_addend: 0,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), GrpcCode::InvalidArgument, "{reason}");
        assert!(
            err.message().contains(reason),
            "{reason}: {}",
            err.message()
        );
    }
}

/// A RateLimitRequest exactly as Envoy encodes it, written out by hand:
/// domain "edge" (field 1), one descriptor (field 2) with the entry
/// remote_address = 10.1.2.3 (entry field 1: key 1, value 2), and
/// hits_addend 3 (field 3, varint).
const RLS_FIXTURE: &[u8] = &[
    0x0a, 0x04, b'e', b'd', b'g', b'e', // 1: domain
    0x12, 0x1c, // 2: descriptors, 28 bytes
    0x0a, 0x1a, // descriptor.1: entries, 26 bytes
    0x0a, 0x0e, b'r', b'e', b'm', b'o', b't', b'e', b'_', b'a', b'd', b'd', b'r', b'e', b's',
    b's', // entry.1: key
    0x12, 0x08, b'1', b'0', b'.', b'1', b'.', b'2', b'.', b'3', // entry.2: value
    0x18, 0x03, // 3: hits_addend = 3
];

#[tokio::test]
async fn envoy_wire_bytes_of_a_rate_limit_request() {
    // Our generated type agrees with the hand-written bytes …
    let ours = rls::RateLimitRequest {
        domain: "edge".into(),
        descriptors: vec![descriptor(&[("remote_address", "10.1.2.3")], None)],
        hits_addend: 3,
    };
    assert_eq!(ours.encode_to_vec(), RLS_FIXTURE);
    // … and the server understands them.
    let fg = Floodgate::start(&config());
    let raw: Vec<u8> = raw_call(
        &fg,
        "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit",
        RLS_FIXTURE,
    )
    .await;
    // overall_code (field 1, varint) = OK (1), then statuses (field 2).
    assert_eq!(&raw[..3], &[0x08, 0x01, 0x12]);
    let response = rls::RateLimitResponse::decode(raw.as_slice()).unwrap();
    assert_eq!(response.statuses[0].limit_remaining, 7);
    assert_eq!(
        response.statuses[0].current_limit.as_ref().unwrap().name,
        "edge-per-ip"
    );
}

/// Protobuf field encoders for hand-built messages.
fn field_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    prost::encoding::encode_key(field, prost::encoding::WireType::LengthDelimited, out);
    prost::encoding::encode_varint(bytes.len() as u64, out);
    out.put_slice(bytes);
}

fn field_varint(out: &mut Vec<u8>, field: u32, value: u64) {
    prost::encoding::encode_key(field, prost::encoding::WireType::Varint, out);
    prost::encoding::encode_varint(value, out);
}

/// An ext_authz CheckRequest built field by field from Envoy's numbers:
/// CheckRequest.attributes = 1; AttributeContext.source = 1,
/// .request = 4; Peer.address = 1; Address.socket_address = 1;
/// SocketAddress.address = 2, .port_value = 3; Request.http = 2;
/// HttpRequest.method = 2, .headers = 3 (map: key 1, value 2), .path = 4.
fn authz_fixture(user: &str, path: &str, xff: Option<&str>) -> Vec<u8> {
    let mut socket = Vec::new();
    field_bytes(&mut socket, 2, b"192.0.2.10");
    field_varint(&mut socket, 3, 5555);
    let mut address = Vec::new();
    field_bytes(&mut address, 1, &socket);
    let mut peer = Vec::new();
    field_bytes(&mut peer, 1, &address);
    let mut http = Vec::new();
    field_bytes(&mut http, 2, b"POST");
    let mut headers = vec![("x-user-id", user)];
    headers.extend(xff.map(|x| ("x-forwarded-for", x)));
    for (k, v) in headers {
        let mut entry = Vec::new();
        field_bytes(&mut entry, 1, k.as_bytes());
        field_bytes(&mut entry, 2, v.as_bytes());
        field_bytes(&mut http, 3, &entry);
    }
    field_bytes(&mut http, 4, path.as_bytes());
    let mut request = Vec::new();
    field_bytes(&mut request, 2, &http);
    let mut context = Vec::new();
    field_bytes(&mut context, 1, &peer);
    field_bytes(&mut context, 4, &request);
    let mut check = Vec::new();
    field_bytes(&mut check, 1, &context);
    check
}

#[tokio::test]
async fn ext_authz_allows_then_denies_with_429() {
    let fg = Floodgate::start(&config());
    let path = "/envoy.service.auth.v3.Authorization/Check";
    let fixture = authz_fixture("alice", "/api/chat/completions?stream=true", None);
    // Our generated type reads the hand-built bytes as intended.
    let decoded = authz::CheckRequest::decode(fixture.as_slice()).unwrap();
    let http = decoded
        .attributes
        .as_ref()
        .unwrap()
        .request
        .as_ref()
        .unwrap()
        .http
        .as_ref()
        .unwrap();
    assert_eq!(http.method, "POST");
    assert_eq!(http.headers["x-user-id"], "alice");
    let source = decoded.attributes.unwrap().source.unwrap().address.unwrap();
    assert_eq!(
        source,
        Address {
            address: Some(address::Address::SocketAddress(SocketAddress {
                address: "192.0.2.10".into(),
                port_specifier: Some(
                    floodgate_proto::envoy::config::core::v3::socket_address::PortSpecifier::PortValue(5555)
                ),
                ..SocketAddress::default()
            }))
        }
    );

    for remaining in (0..3).rev() {
        let raw = raw_call(&fg, path, &fixture).await;
        let response = authz::CheckResponse::decode(raw.as_slice()).unwrap();
        assert_eq!(response.status.unwrap().code, 0);
        let Some(authz::check_response::HttpResponse::OkResponse(ok)) = response.http_response
        else {
            panic!("expected ok_response");
        };
        let header = ok
            .response_headers_to_add
            .iter()
            .find(|h| h.header.as_ref().unwrap().key == "ratelimit")
            .unwrap();
        let value = &header.header.as_ref().unwrap().value;
        assert!(
            value.starts_with(&format!("\"ai-per-user\";r={remaining};t=")),
            "{value}"
        );
    }
    let raw = raw_call(&fg, path, &fixture).await;
    // CheckResponse.status (field 1) then denied_response (field 2).
    assert_eq!(raw[0], 0x0a);
    let response = authz::CheckResponse::decode(raw.as_slice()).unwrap();
    assert_eq!(response.status.unwrap().code, 8);
    let Some(authz::check_response::HttpResponse::DeniedResponse(denied)) = response.http_response
    else {
        panic!("expected denied_response");
    };
    assert_eq!(denied.status.unwrap().code, 429);
    let keys: Vec<_> = denied
        .headers
        .iter()
        .map(|h| h.header.as_ref().unwrap().key.as_str())
        .collect();
    assert!(keys.contains(&"retry-after"), "{keys:?}");
    let body: serde_json::Value = serde_json::from_str(&denied.body).unwrap();
    assert_eq!(body["policy"], "ai-per-user");
    // Another user is still allowed.
    let bob = authz_fixture("bob", "/api/chat/completions", None);
    let response =
        authz::CheckResponse::decode(raw_call(&fg, path, &bob).await.as_slice()).unwrap();
    assert_eq!(response.status.unwrap().code, 0);
}

#[tokio::test]
async fn ext_authz_without_http_attributes_is_allowed_and_counted() {
    let fg = Floodgate::start(&config());
    let raw = raw_call(&fg, "/envoy.service.auth.v3.Authorization/Check", &[]).await;
    let response = authz::CheckResponse::decode(raw.as_slice()).unwrap();
    assert_eq!(response.status.unwrap().code, 0);
    let metrics = fg.http("GET", "/metrics", None).text();
    assert!(
        metrics.contains("floodgate_ext_authz_incomplete_total 1"),
        "{metrics}"
    );
    // An over-long user id is a 400 for the client, never a key.
    let long = "u".repeat(300);
    let raw = raw_call(
        &fg,
        "/envoy.service.auth.v3.Authorization/Check",
        &authz_fixture(&long, "/api/chat/x", None),
    )
    .await;
    let response = authz::CheckResponse::decode(raw.as_slice()).unwrap();
    let Some(authz::check_response::HttpResponse::DeniedResponse(denied)) = response.http_response
    else {
        panic!("expected denied_response");
    };
    assert_eq!(denied.status.unwrap().code, 400);
    assert!(denied.body.contains("300 bytes"));
}

/// Sends raw request bytes to a unary gRPC method; the raw response bytes.
async fn raw_call(fg: &Floodgate, path: &str, body: &[u8]) -> Vec<u8> {
    let channel = tonic::transport::Endpoint::from_shared(fg.grpc_uri())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let response = grpc
        .unary::<_, Bytes, _>(
            tonic::Request::new(Bytes::copy_from_slice(body)),
            path.parse().unwrap(),
            floodgate_e2e::RawCodec,
        )
        .await
        .unwrap();
    response.into_inner().to_vec()
}

/// Envoy has no "request finished" callback to floodgate on ext_authz or
/// RLS: a lease taken there could never be released. `concurrency`
/// policies are not applied on those services (a metric counts the skips);
/// `/v1/check`, which hands the lease back to its caller, still applies them.
#[tokio::test]
async fn concurrency_policies_never_cap_ext_authz_or_rls() {
    let fg = Floodgate::start(&format!(
        r#"{FREE_PORTS}
[[endpoint]]
name = "ai"
path = "/api/chat/*"

[[policy]]
name = "ai-in-flight"
match = {{ endpoint = "ai" }}
key = ["user"]
algorithm = "concurrency"
limit = 2
lease_timeout = "60s"

[[policy]]
name = "edge-in-flight"
domain = "edge"
key = ["tenant"]
algorithm = "concurrency"
limit = 2
lease_timeout = "60s"
"#
    ));
    let path = "/envoy.service.auth.v3.Authorization/Check";
    let fixture = authz_fixture("alice", "/api/chat/completions", None);
    for i in 0..4 {
        let raw = raw_call(&fg, path, &fixture).await;
        let response = authz::CheckResponse::decode(raw.as_slice()).unwrap();
        assert_eq!(response.status.unwrap().code, 0, "ext_authz check {i}");
    }
    let mut client = rls_client(&fg).await;
    for i in 0..4 {
        let response = client
            .should_rate_limit(rls::RateLimitRequest {
                domain: "edge".into(),
                descriptors: vec![descriptor(&[("tenant", "t1")], None)],
                hits_addend: 1,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(response.overall_code, Code::Ok as i32, "RLS check {i}");
    }
    // Where the caller releases leases, the policy applies: 2 in flight.
    let body = r#"{"attributes": {"user": "alice", "endpoint": "ai"}}"#;
    let statuses: Vec<u16> = (0..3).map(|_| fg.check(body).status).collect();
    assert_eq!(statuses, [200, 200, 429]);
    let metrics = fg.http("GET", "/metrics", None).text();
    for (transport, policy) in [
        ("envoy_authz", "ai-in-flight"),
        ("envoy_rls", "edge-in-flight"),
    ] {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("floodgate_concurrency_skipped_total")
                    && l.contains(&format!("transport=\"{transport}\""))
                    && l.contains(&format!("policy=\"{policy}\""))
                    && l.ends_with(" 4")),
            "{transport}: {metrics}"
        );
    }
}

/// ext_authz answers a denial with the deciding policy's `deny_status`
/// (503 here), with `Retry-After`.
#[tokio::test]
async fn ext_authz_denies_with_the_policys_deny_status() {
    let fg = Floodgate::start(&format!(
        "{FREE_PORTS}\n[identity]\nuser_header = \"x-user-id\"\n\n[[policy]]\nname = \"capacity\"\nkey = [\"user\"]\nlimit = 1\nwindow = \"1m\"\ndeny_status = 503\n"
    ));
    let path = "/envoy.service.auth.v3.Authorization/Check";
    let fixture = authz_fixture("alice", "/api/chat/completions", None);
    let first = authz::CheckResponse::decode(raw_call(&fg, path, &fixture).await.as_slice());
    assert_eq!(first.unwrap().status.unwrap().code, 0);
    let raw = raw_call(&fg, path, &fixture).await;
    let response = authz::CheckResponse::decode(raw.as_slice()).unwrap();
    let Some(authz::check_response::HttpResponse::DeniedResponse(denied)) = response.http_response
    else {
        panic!("expected denied_response");
    };
    assert_eq!(denied.status.unwrap().code, 503);
    assert!(denied
        .headers
        .iter()
        .any(|h| h.header.as_ref().unwrap().key == "retry-after"));
    let body: serde_json::Value = serde_json::from_str(&denied.body).unwrap();
    assert_eq!(body["deny_status"], 503);
}
