//! examples/envoy/: Envoy cannot run here, so this checks what can be
//! checked — both YAML files parse, use the V3 APIs and the right filter
//! type URLs, point a HTTP/2 `floodgate` cluster at the paired config's gRPC
//! port, and the descriptors ratelimit.yaml's actions produce (and the
//! requests ext_authz sends) are decided as intended by a real floodgate
//! started on the paired config.

use std::collections::HashMap;

use floodgate_e2e::{repo_root, Floodgate};
use floodgate_proto::envoy::config::core::v3::{address, Address, SocketAddress};
use floodgate_proto::envoy::extensions::common::ratelimit::v3::{
    rate_limit_descriptor::Entry, RateLimitDescriptor,
};
use floodgate_proto::envoy::service::auth::v3 as authz;
use floodgate_proto::envoy::service::ratelimit::v3 as rls;
use serde_yaml_ng::Value;

const RATELIMIT_FILTER: &str =
    "type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit";
const EXT_AUTHZ_FILTER: &str =
    "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz";
const ROUTER_FILTER: &str = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_root().join(path)).expect(path)
}

fn yaml(path: &str) -> Value {
    serde_yaml_ng::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every value stored under `key`, anywhere in `value`.
fn find_all<'a>(value: &'a Value, key: &str, out: &mut Vec<&'a Value>) {
    match value {
        Value::Mapping(map) => {
            for (k, v) in map {
                if k.as_str() == Some(key) {
                    out.push(v);
                }
                find_all(v, key, out);
            }
        }
        Value::Sequence(items) => items.iter().for_each(|v| find_all(v, key, out)),
        _ => {}
    }
}

fn all<'a>(value: &'a Value, key: &str) -> Vec<&'a Value> {
    let mut out = Vec::new();
    find_all(value, key, &mut out);
    out
}

/// The http filter whose typed_config has `@type` = `type_url`.
fn filter<'a>(envoy: &'a Value, type_url: &str) -> &'a Value {
    all(envoy, "typed_config")
        .into_iter()
        .find(|c| c["@type"].as_str() == Some(type_url))
        .unwrap_or_else(|| panic!("no filter {type_url}"))
}

/// The port of the paired config's gRPC listener.
fn grpc_port() -> u64 {
    let toml = read("examples/envoy/floodgate.toml");
    let line = toml
        .lines()
        .find(|l| l.starts_with("grpc = "))
        .expect("grpc line");
    let port: String = line
        .split(':')
        .nth(1)
        .unwrap()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    port.parse().unwrap()
}

/// Checks the `floodgate` cluster: HTTP/2, at the gRPC port.
fn check_floodgate_cluster(envoy: &Value) {
    let cluster = all(envoy, "clusters")[0]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|c| c["name"].as_str() == Some("floodgate"))
        .expect("a floodgate cluster");
    assert!(
        !all(cluster, "http2_protocol_options").is_empty(),
        "gRPC needs HTTP/2"
    );
    let ports: Vec<u64> = all(cluster, "port_value")
        .iter()
        .filter_map(|v| v.as_u64())
        .collect();
    assert_eq!(ports, [grpc_port()]);
}

/// The paired config with its listeners on free ports.
fn start_paired() -> Floodgate {
    let toml = read("examples/envoy/floodgate.toml")
        .replace("127.0.0.1:9720", "127.0.0.1:0")
        .replace("127.0.0.1:9721", "127.0.0.1:0");
    Floodgate::start(&toml)
}

/// The descriptors Envoy builds from `rate_limits` for a request from
/// `client_ip` with `headers` (the action kinds the example uses).
fn descriptors(
    rate_limits: &Value,
    client_ip: &str,
    headers: &HashMap<&str, &str>,
) -> Vec<RateLimitDescriptor> {
    let mut out = Vec::new();
    for limit in rate_limits.as_sequence().unwrap() {
        let mut entries = Vec::new();
        for action in limit["actions"].as_sequence().unwrap() {
            let (kind, spec) = action.as_mapping().unwrap().iter().next().unwrap();
            let entry = match kind.as_str().unwrap() {
                "remote_address" => ("remote_address".to_string(), client_ip.to_string()),
                "generic_key" => (
                    spec["descriptor_key"]
                        .as_str()
                        .unwrap_or("generic_key")
                        .to_string(),
                    spec["descriptor_value"].as_str().unwrap().to_string(),
                ),
                "request_headers" => (
                    spec["descriptor_key"].as_str().unwrap().to_string(),
                    headers[spec["header_name"].as_str().unwrap()].to_string(),
                ),
                other => panic!("action {other} not modelled by this test"),
            };
            entries.push(Entry {
                key: entry.0,
                value: entry.1,
            });
        }
        out.push(RateLimitDescriptor {
            entries,
            limit: None,
            hits_addend: None,
        });
    }
    out
}

#[tokio::test]
async fn ratelimit_example_names_floodgate_and_its_descriptors_hit_the_policies() {
    let envoy = yaml("examples/envoy/ratelimit.yaml");
    let ratelimit = filter(&envoy, RATELIMIT_FILTER);
    filter(&envoy, ROUTER_FILTER);
    assert_eq!(
        ratelimit["rate_limit_service"]["transport_api_version"].as_str(),
        Some("V3")
    );
    assert_eq!(
        ratelimit["rate_limit_service"]["grpc_service"]["envoy_grpc"]["cluster_name"].as_str(),
        Some("floodgate")
    );
    let domain = ratelimit["domain"].as_str().unwrap();
    assert!(read("examples/envoy/floodgate.toml").contains(&format!("domain = \"{domain}\"")));
    check_floodgate_cluster(&envoy);

    // The /api/chat/ route's actions, for a request from 198.51.100.7 by u1.
    let chat_route = all(&envoy, "routes")[0].as_sequence().unwrap()[0].clone();
    assert_eq!(chat_route["match"]["prefix"].as_str(), Some("/api/chat/"));
    let headers = HashMap::from([("x-user-id", "u1")]);
    let descriptors = descriptors(
        &chat_route["route"]["rate_limits"],
        "198.51.100.7",
        &headers,
    );
    assert_eq!(descriptors.len(), 2);

    let fg = start_paired();
    let mut client = rls::rate_limit_service_client::RateLimitServiceClient::connect(fg.grpc_uri())
        .await
        .unwrap();
    let request = rls::RateLimitRequest {
        domain: domain.to_string(),
        descriptors,
        hits_addend: 0,
    };
    for i in 0..20 {
        let response = client
            .should_rate_limit(request.clone())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            response.overall_code,
            rls::rate_limit_response::Code::Ok as i32,
            "request {i}"
        );
        let names: Vec<&str> = response
            .statuses
            .iter()
            .map(|s| {
                s.current_limit
                    .as_ref()
                    .expect("a policy applies")
                    .name
                    .as_str()
            })
            .collect();
        assert_eq!(names, ["edge-per-ip", "edge-ai-per-user"]);
    }
    // The 21st AI call of u1 in the minute is over edge-ai-per-user's 20.
    let response = client
        .should_rate_limit(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        response.overall_code,
        rls::rate_limit_response::Code::OverLimit as i32
    );
}

fn authz_request(user: &str) -> authz::CheckRequest {
    authz::CheckRequest {
        attributes: Some(authz::AttributeContext {
            source: Some(authz::attribute_context::Peer {
                address: Some(Address {
                    address: Some(address::Address::SocketAddress(SocketAddress {
                        address: "198.51.100.7".into(),
                        ..SocketAddress::default()
                    })),
                }),
                ..Default::default()
            }),
            request: Some(authz::attribute_context::Request {
                http: Some(authz::attribute_context::HttpRequest {
                    method: "POST".into(),
                    path: "/api/chat/completions".into(),
                    headers: HashMap::from([("x-user-id".to_string(), user.to_string())]),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

#[tokio::test]
async fn ext_authz_example_names_floodgate_and_its_checks_hit_the_policy() {
    let envoy = yaml("examples/envoy/ext_authz.yaml");
    let ext_authz = filter(&envoy, EXT_AUTHZ_FILTER);
    filter(&envoy, ROUTER_FILTER);
    assert_eq!(ext_authz["transport_api_version"].as_str(), Some("V3"));
    assert_eq!(
        ext_authz["grpc_service"]["envoy_grpc"]["cluster_name"].as_str(),
        Some("floodgate")
    );
    check_floodgate_cluster(&envoy);

    let fg = start_paired();
    let mut client = authz::authorization_client::AuthorizationClient::connect(fg.grpc_uri())
        .await
        .unwrap();
    for _ in 0..20 {
        let response = client
            .check(authz_request("u1"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(response.status.unwrap().code, 0);
    }
    let response = client
        .check(authz_request("u1"))
        .await
        .unwrap()
        .into_inner();
    let Some(authz::check_response::HttpResponse::DeniedResponse(denied)) = response.http_response
    else {
        panic!("the 21st AI call of u1 is denied");
    };
    assert_eq!(denied.status.unwrap().code, 429);
    let body: serde_json::Value = serde_json::from_str(&denied.body).unwrap();
    assert_eq!(body["policy"], "ai-per-user");
}
