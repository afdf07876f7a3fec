//! Plan tiers and identity from the request, against the real binary: a pro
//! user gets the pro limit through the proxy (by a header, and by a claim
//! of a verified JWT), a forged token is limited as anonymous (by address),
//! `/v1/auth` and ext_authz read the same header attributes, the API shows
//! what replaced what, and JWT keys reload with the configuration.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use floodgate_e2e::upstream::ScriptedUpstream;
use floodgate_e2e::{http_request, Floodgate, HttpResponse, RedisServer};
use floodgate_proto::envoy::config::core::v3::{address, Address, SocketAddress};
use floodgate_proto::envoy::service::auth::v3 as authz;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;

const PATH: &str = "/api/chat/completions";
const SECRET: &str = "e2e-only-secret-0123456789abcdef-0123";

/// Two AI requests per user (or address, for anonymous clients) per hour;
/// five for the pro plan, which replaces it.
const TIERS: &str = r#"
[[endpoint]]
name = "ai"
path = "/api/chat/*"
methods = ["POST"]

[[policy]]
name = "ai-free"
match = { endpoint = "ai" }
key = ["user|ip"]
limit = 2
window = "1h"

[[policy]]
name = "ai-pro"
match = { endpoint = "ai", plan = "pro" }
key = ["user|ip"]
limit = 5
window = "1h"
replaces = ["ai-free"]
"#;

/// floodgate with a proxy in front of `upstream`, `identity` lines and the
/// tiers above.
fn start(upstream: &ScriptedUpstream, identity: &str) -> Floodgate {
    start_on(upstream, "", identity)
}

/// The same with `store` lines (a `[store]` section, or nothing for the
/// local store).
fn start_on(upstream: &ScriptedUpstream, store: &str, identity: &str) -> Floodgate {
    Floodgate::start(&format!(
        "[server]\nhttp = \"127.0.0.1:0\"\ngrpc = \"127.0.0.1:0\"\nproxy = {{ listen = \"127.0.0.1:0\", upstream = \"http://{}\" }}\n\n{store}\n[identity]\n{identity}\n{TIERS}",
        upstream.addr
    ))
}

fn proxied(fg: &Floodgate, headers: &[(&str, &str)]) -> HttpResponse {
    http_request(fg.proxy.unwrap(), "POST", PATH, headers, Some(b"{}"))
}

/// How many of 8 proxied requests with `headers` pass.
fn passing(fg: &Floodgate, headers: &[(&str, &str)]) -> usize {
    let statuses: Vec<u16> = (0..8).map(|_| proxied(fg, headers).status).collect();
    let passed = statuses.iter().take_while(|&&s| s == 200).count();
    assert!(statuses[passed..].iter().all(|&s| s == 429), "{statuses:?}");
    passed
}

fn write_secret(dir: &Path, name: &str, secret: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("{secret}\n")).unwrap();
    path.to_str().unwrap().to_string()
}

fn token(secret: &str, claims: serde_json::Value) -> String {
    let key = EncodingKey::from_secret(secret.as_bytes());
    let jwt = encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap();
    format!("Bearer {jwt}")
}

fn exp() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600
}

#[test]
fn a_pro_user_gets_the_pro_limit_through_the_proxy_with_a_header() {
    let upstream = ScriptedUpstream::start();
    let fg = start(&upstream, "attributes = { plan = \"x-plan\" }");
    assert_eq!(
        passing(&fg, &[("x-user-id", "pro-user"), ("x-plan", "pro")]),
        5
    );
    assert_eq!(passing(&fg, &[("x-user-id", "free-user")]), 2);
    assert_eq!(
        passing(&fg, &[("x-user-id", "other"), ("x-plan", "gold")]),
        2
    );
    // The denial says which policy decided and what it replaced.
    let denied = proxied(&fg, &[("x-user-id", "pro-user"), ("x-plan", "pro")]).json();
    assert_eq!(denied["policy"], "ai-pro");
    assert_eq!(denied["limit"], 5);
    assert_eq!(denied["statuses"][0]["replaced"], json!(["ai-free"]));
    // Two x-plan lines (a client's and an appending proxy's): ambiguous, so
    // no plan, so the free limit.
    let two = [
        ("x-user-id", "sneaky"),
        ("x-plan", "free"),
        ("x-plan", "pro"),
    ];
    assert_eq!(passing(&fg, &two), 2);
}

#[test]
fn tiers_work_the_same_on_the_redis_store() {
    let redis = RedisServer::start();
    let upstream = ScriptedUpstream::start();
    let store = format!(
        "[store]\nkind = \"redis\"\n[store.redis]\nurl = \"{}\"\n",
        redis.url()
    );
    let fg = start_on(&upstream, &store, "attributes = { plan = \"x-plan\" }");
    assert_eq!(
        passing(&fg, &[("x-user-id", "pro-user"), ("x-plan", "pro")]),
        5
    );
    assert_eq!(passing(&fg, &[("x-user-id", "free-user")]), 2);
    let denied = proxied(&fg, &[("x-user-id", "pro-user"), ("x-plan", "pro")]).json();
    assert_eq!(denied["statuses"][0]["source"], "redis");
    assert_eq!(denied["statuses"][0]["replaced"], json!(["ai-free"]));
    // The pro user's requests never touched the free policy's counter.
    let keys = redis.cli(&["--scan", "--pattern", "*ai-free*"]);
    assert!(!keys.contains("pro-user"), "{keys}");
    assert!(keys.contains("free-user"), "{keys}");
}

#[test]
fn a_pro_user_gets_the_pro_limit_with_a_jwt_claim_and_a_forged_token_is_anonymous() {
    let upstream = ScriptedUpstream::start();
    let dir = tempfile::tempdir().unwrap();
    let secret = write_secret(dir.path(), "jwt.secret", SECRET);
    let fg = start(
        &upstream,
        &format!("[identity.jwt]\nalgorithm = \"HS256\"\nsecret_file = {secret:?}\naudience = \"chat\"\nclaims = {{ plan = \"plan\" }}\n"),
    );
    let pro = token(
        SECRET,
        json!({ "sub": "u1", "plan": "pro", "aud": "chat", "exp": exp() }),
    );
    assert_eq!(passing(&fg, &[("authorization", &pro)]), 5);
    let free = token(SECRET, json!({ "sub": "u2", "aud": "chat", "exp": exp() }));
    assert_eq!(passing(&fg, &[("authorization", &free)]), 2);
    // The user header is not believed when a JWT is configured: these are
    // anonymous, counted by address (127.0.0.1), which they share.
    assert_eq!(passing(&fg, &[("x-user-id", "u3"), ("x-plan", "pro")]), 2);
    let forged = token(
        "attacker-secret-0123456789abcdef-0123",
        json!({ "sub": "u4", "plan": "pro", "aud": "chat", "exp": exp() }),
    );
    let expired = token(
        SECRET,
        json!({ "sub": "u5", "plan": "pro", "aud": "chat", "exp": 1_000_000 }),
    );
    let wrong_audience = token(
        SECRET,
        json!({ "sub": "u6", "plan": "pro", "aud": "billing", "exp": exp() }),
    );
    let none = "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1NyIsInBsYW4iOiJwcm8iLCJhdWQiOiJjaGF0IiwiZXhwIjo5OTk5OTk5OTk5fQ.";
    for bad in [&forged, &expired, &wrong_audience, none] {
        assert_eq!(proxied(&fg, &[("authorization", bad)]).status, 429, "{bad}");
    }
    let metrics = fg.http("GET", "/metrics", None).text();
    for reason in ["signature", "expired", "audience", "malformed"] {
        let line = format!("floodgate_jwt_rejected_total{{reason=\"{reason}\"}}");
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
}

#[test]
fn auth_request_and_ext_authz_read_the_header_attributes() {
    let upstream = ScriptedUpstream::start();
    let fg = start(&upstream, "attributes = { plan = \"x-plan\" }");
    let auth = |user: &str, plan: Option<&str>| {
        let mut headers = vec![
            ("X-Original-URI", PATH),
            ("X-Original-Method", "POST"),
            ("x-user-id", user),
        ];
        headers.extend(plan.map(|p| ("x-plan", p)));
        http_request(fg.http, "GET", "/v1/auth", &headers, None).status
    };
    let pro: Vec<u16> = (0..6).map(|_| auth("a1", Some("pro"))).collect();
    assert_eq!(pro, [204, 204, 204, 204, 204, 403]);
    let free: Vec<u16> = (0..3).map(|_| auth("a2", None)).collect();
    assert_eq!(free, [204, 204, 403]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut client = authz::authorization_client::AuthorizationClient::connect(fg.grpc_uri())
            .await
            .unwrap();
        for (user, plan, allowed) in [("e1", Some("pro"), 5), ("e2", None, 2)] {
            let mut denied = Vec::new();
            for _ in 0..allowed + 1 {
                let response = client
                    .check(authz_request(user, plan))
                    .await
                    .unwrap()
                    .into_inner();
                denied.push(response.status.unwrap().code != 0);
            }
            let mut expected = vec![false; allowed];
            expected.push(true);
            assert_eq!(denied, expected, "{user} {plan:?}");
        }
    });
}

/// An ext_authz check of `POST /api/chat/completions` by `user`, with an
/// `x-plan` header when `plan` is given.
fn authz_request(user: &str, plan: Option<&str>) -> authz::CheckRequest {
    let peer = Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: "192.0.2.10".into(),
            ..SocketAddress::default()
        })),
    };
    let mut headers = HashMap::from([("x-user-id".to_string(), user.to_string())]);
    if let Some(plan) = plan {
        headers.insert("x-plan".into(), plan.into());
    }
    authz::CheckRequest {
        attributes: Some(authz::AttributeContext {
            source: Some(authz::attribute_context::Peer {
                address: Some(peer),
                ..Default::default()
            }),
            request: Some(authz::attribute_context::Request {
                http: Some(authz::attribute_context::HttpRequest {
                    method: "POST".into(),
                    path: PATH.into(),
                    headers,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

#[test]
fn the_api_shows_what_replaced_what() {
    let upstream = ScriptedUpstream::start();
    let fg = start(&upstream, "");
    let body =
        json!({ "attributes": { "endpoint": "ai", "plan": "pro", "user": "u1" } }).to_string();
    let verdict = fg.check(&body).json();
    assert_eq!(verdict["policy"], "ai-pro");
    let statuses = verdict["statuses"].as_array().unwrap();
    assert_eq!(statuses.len(), 1, "{verdict}");
    assert_eq!(statuses[0]["replaced"], json!(["ai-free"]));
    let free = json!({ "attributes": { "endpoint": "ai", "user": "u1" } }).to_string();
    let verdict = fg.check(&free).json();
    assert_eq!(verdict["policy"], "ai-free");
    assert!(
        verdict["statuses"][0].get("replaced").is_none(),
        "{verdict}"
    );
    let policies = fg.http("GET", "/v1/policies", None).json();
    let by_name = |n: &str| {
        policies["policies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(by_name("ai-pro")["replaces"], json!(["ai-free"]));
    assert!(by_name("ai-free").get("replaces").is_none());
}

#[test]
fn jwt_keys_reload_with_the_config_and_a_bad_key_keeps_the_old_one() {
    let upstream = ScriptedUpstream::start();
    let dir = tempfile::tempdir().unwrap();
    let secret = write_secret(dir.path(), "jwt.secret", SECRET);
    let fg = start(
        &upstream,
        &format!("[identity.jwt]\nalgorithm = \"HS256\"\nsecret_file = {secret:?}\nclaims = {{ plan = \"plan\" }}\n"),
    );
    let claims = |user: &str| json!({ "sub": user, "plan": "pro", "exp": exp() });
    let old = token(SECRET, claims("k1"));
    assert_eq!(proxied(&fg, &[("authorization", &old)]).status, 200);
    // Rotate the secret, then SIGHUP: tokens of the new secret verify, the
    // old one's are anonymous (and share the address's free counter).
    let rotated = "rotated-secret-0123456789abcdef-0123";
    write_secret(dir.path(), "jwt.secret", rotated);
    fg.signal("HUP");
    let new = token(rotated, claims("k2"));
    wait_until(|| log_has(&fg, "config reloaded"));
    assert_eq!(proxied(&fg, &[("authorization", &new)]).status, 200);
    assert_eq!(
        passing(&fg, &[("authorization", &old)]),
        2,
        "old secret: anonymous"
    );
    // A secret too short to be safe: the reload is refused, the rotated
    // secret stays in force.
    write_secret(dir.path(), "jwt.secret", "short");
    fg.signal("HUP");
    wait_until(|| log_has(&fg, "config reload rejected"));
    assert!(log_has(&fg, "at least 32"), "{}", fg.log.lock().unwrap());
    let newer = token(rotated, claims("k3"));
    assert_eq!(passing(&fg, &[("authorization", &newer)]), 5);
}

fn log_has(fg: &Floodgate, text: &str) -> bool {
    fg.log.lock().unwrap().contains(text)
}

fn wait_until(mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !ready() {
        assert!(Instant::now() < deadline, "not within 5 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}
