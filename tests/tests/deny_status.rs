//! `deny_status`: the HTTP status a policy's denials are answered with,
//! through `/v1/check` (JSON field), floodgate.v1 (field 11) and the
//! reverse proxy (the response status), always with `Retry-After`.

use floodgate_e2e::upstream::ScriptedUpstream;
use floodgate_e2e::{http_request, Floodgate, FREE_PORTS};
use floodgate_proto::floodgate::v1::rate_limiter_client::RateLimiterClient;
use floodgate_proto::floodgate::v1::CheckRequest;

/// Two policies: `capacity` answers 503, `plain` the default 429.
fn policies() -> &'static str {
    "[[endpoint]]\nname = \"ai\"\npath = \"/ai/*\"\n\n[[endpoint]]\nname = \"api\"\npath = \"/api/*\"\n\n\
     [[policy]]\nname = \"capacity\"\nmatch = { endpoint = \"ai\" }\nkey = [\"user\"]\nlimit = 1\nwindow = \"366d\"\nalgorithm = \"fixed_window\"\ndeny_status = 503\n\n\
     [[policy]]\nname = \"plain\"\nmatch = { endpoint = \"api\" }\nkey = [\"user\"]\nlimit = 1\nwindow = \"366d\"\nalgorithm = \"fixed_window\"\n"
}

#[test]
fn check_json_carries_the_deciding_policys_deny_status() {
    let fg = Floodgate::start(&format!("{FREE_PORTS}\n{}", policies()));
    let body = r#"{"attributes": {"user": "u1", "endpoint": "ai"}}"#;
    let first = fg.check(body);
    assert_eq!(first.status, 200);
    assert!(
        first.json().get("deny_status").is_none(),
        "{}",
        first.text()
    );
    assert_eq!(first.json()["waited_ms"], 0);
    let denied = fg.check(body);
    // /v1/check itself stays 429; the body says what to answer with.
    assert_eq!(denied.status, 429, "{}", denied.text());
    assert_eq!(denied.json()["deny_status"], 503);
    assert_eq!(denied.json()["policy"], "capacity");
    assert!(denied.header("retry-after").is_some());
    let plain = r#"{"attributes": {"user": "u1", "endpoint": "api"}}"#;
    assert_eq!(fg.check(plain).status, 200);
    assert_eq!(fg.check(plain).json()["deny_status"], 429);
    let policies = fg.http("GET", "/v1/policies", None).json();
    assert_eq!(policies["policies"][0]["deny_status"], 503);
    assert_eq!(policies["policies"][1]["deny_status"], 429);
    assert!(policies["policies"][0].get("max_wait_ms").is_none());
}

#[tokio::test]
async fn grpc_check_carries_deny_status_in_field_11() {
    let fg = Floodgate::start(&format!("{FREE_PORTS}\n{}", policies()));
    let mut client = RateLimiterClient::connect(fg.grpc_uri()).await.unwrap();
    let request = |endpoint: &str| CheckRequest {
        attributes: [("user", "u1"), ("endpoint", endpoint)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..CheckRequest::default()
    };
    let allowed = client.check(request("ai")).await.unwrap().into_inner();
    assert!(allowed.allowed);
    assert_eq!(allowed.deny_status, 0);
    let denied = client.check(request("ai")).await.unwrap().into_inner();
    assert!(!denied.allowed);
    assert_eq!((denied.deny_status, denied.waited_ms), (503, 0));
    client.check(request("api")).await.unwrap();
    let plain = client.check(request("api")).await.unwrap().into_inner();
    assert_eq!(plain.deny_status, 429);
}

#[test]
fn the_proxy_answers_a_denial_with_the_policys_status_and_retry_after() {
    let upstream = ScriptedUpstream::start();
    let fg = Floodgate::start(&format!(
        "{FREE_PORTS}proxy = {{ listen = \"127.0.0.1:0\", upstream = \"http://{}\" }}\n\n{}",
        upstream.addr,
        policies()
    ));
    let proxy = fg.proxy.expect("the proxy listens");
    let get = |path: &str| http_request(proxy, "GET", path, &[("x-user-id", "u1")], None);
    assert_eq!(get("/ai/chat").status, 200);
    let denied = get("/ai/chat");
    assert_eq!(denied.status, 503, "{}", denied.text());
    assert!(
        denied
            .header("retry-after")
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert_eq!(denied.json()["deny_status"], 503);
    assert_eq!(get("/api/x").status, 200);
    let plain = get("/api/x");
    assert_eq!(plain.status, 429);
    assert!(plain.header("retry-after").is_some());
    assert_eq!(upstream.hits(), 2, "denied requests never reach the app");
}
