//! Token budgets over the real binary: `/v1/check` with `"reserve": true`,
//! `POST /v1/settle`, floodgate.v1 `Settle`, hostile settles, and the cost
//! metrics.

use floodgate_e2e::{Floodgate, FREE_PORTS};
use floodgate_proto::floodgate::v1::rate_limiter_client::RateLimiterClient;
use floodgate_proto::floodgate::v1::{CheckRequest, SettleRequest};
use tonic::Code;

fn config() -> String {
    format!(
        r#"{FREE_PORTS}
[[policy]]
name = "tokens"
match = {{ endpoint = "chat" }}
key = ["user"]
limit = 10000
window = "1m"
settle = true

[[policy]]
name = "inflight"
match = {{ endpoint = "chat" }}
key = ["user"]
limit = 2
algorithm = "concurrency"
"#
    )
}

fn reserve(fg: &Floodgate, user: &str, hits: u64) -> serde_json::Value {
    let body = format!(
        r#"{{"attributes": {{"user": "{user}", "endpoint": "chat"}}, "hits": {hits}, "reserve": true}}"#
    );
    let r = fg.check(&body);
    assert_eq!(r.status, 200, "{}", r.text());
    let json = r.json();
    release(fg, &json);
    json
}

/// Gives back the `inflight` slot a check took (the call is over).
fn release(fg: &Floodgate, json: &serde_json::Value) {
    if let Some(lease) = json["lease"].as_str() {
        let body = format!(r#"{{"lease": "{lease}"}}"#);
        assert_eq!(fg.http("POST", "/v1/release", Some(&body)).status, 204);
    }
}

fn tokens_left(fg: &Floodgate, user: &str) -> u64 {
    let body = format!(r#"{{"attributes": {{"user": "{user}", "endpoint": "chat"}}, "hits": 0}}"#);
    let json = fg.check(&body).json();
    let tokens = json["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["policy"] == "tokens")
        .expect("tokens status")
        .clone();
    tokens["remaining"].as_u64().unwrap()
}

fn settle(fg: &Floodgate, body: &str) -> (u16, serde_json::Value) {
    let r = fg.http("POST", "/v1/settle", Some(body));
    (r.status, r.json())
}

#[test]
fn reserve_then_settle_over_http() {
    let fg = Floodgate::start(&config());
    let json = reserve(&fg, "alice", 500);
    let id = json["settlement"]
        .as_str()
        .expect("a settlement id")
        .to_string();
    assert!(
        json["lease"].as_str().is_some(),
        "a lease from the same check"
    );
    assert_eq!(tokens_left(&fg, "alice"), 9_500);
    let (status, done) = settle(&fg, &format!(r#"{{"settlement": "{id}", "actual": 200}}"#));
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["settled"], true);
    assert_eq!(done["estimate"], 500);
    assert_eq!(done["charged"], -300);
    assert_eq!(tokens_left(&fg, "alice"), 9_800);
    // Once only.
    let (status, again) = settle(&fg, &format!(r#"{{"settlement": "{id}", "actual": 0}}"#));
    assert_eq!(status, 409, "{again}");
    assert!(again["error"].as_str().unwrap().contains("already settled"));
    assert_eq!(tokens_left(&fg, "alice"), 9_800);
    // A check without reserve carries no id.
    let plain = fg.check(r#"{"attributes": {"user": "alice", "endpoint": "chat"}, "hits": 1}"#);
    assert!(plain.json().get("settlement").is_none());
    release(&fg, &plain.json());
    // An overrun goes past the budget: the next checks are denied.
    let id = reserve(&fg, "alice", 100)["settlement"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, done) = settle(
        &fg,
        &format!(r#"{{"settlement": "{id}", "actual": 20000}}"#),
    );
    assert_eq!((status, done["charged"].as_i64()), (200, Some(19_900)));
    let denied = fg.check(
        r#"{"attributes": {"user": "alice", "endpoint": "chat"}, "hits": 1, "reserve": true}"#,
    );
    assert_eq!(denied.status, 429);
    assert!(denied.json().get("settlement").is_none());
    assert!(denied.header("retry-after").is_some());
}

#[test]
fn hostile_settles_change_nothing() {
    let fg = Floodgate::start(&config());
    let id = reserve(&fg, "bob", 1_000)["settlement"]
        .as_str()
        .unwrap()
        .to_string();
    // The same nonce on another user's counter, a flipped nonce digit.
    let other = id.replacen("tokens:bob/", "tokens:mallory/", 1);
    let nonce_at = id.find('/').unwrap() + 1;
    let mut flipped = id.clone().into_bytes();
    flipped[nonce_at] = if flipped[nonce_at] == b'0' {
        b'1'
    } else {
        b'0'
    };
    let flipped = String::from_utf8(flipped).unwrap();
    let bodies = [
        format!(r#"{{"settlement": "{other}", "actual": 0}}"#),
        format!(r#"{{"settlement": "{flipped}", "actual": 0}}"#),
        r#"{"settlement": "garbage", "actual": 0}"#.to_string(),
        r#"{"settlement": "", "actual": 0}"#.to_string(),
        format!(r#"{{"settlement": "{id}", "actual": "12"}}"#),
        format!(r#"{{"settlement": "{id}", "actual": -1}}"#),
        format!(r#"{{"settlement": "{id}", "actual": 1.5}}"#),
        format!(r#"{{"settlement": "{id}", "actual": 18446744073709551616}}"#),
        format!(r#"{{"settlement": "{id}", "actual": 1000000000001}}"#),
        format!(r#"{{"settlement": "{id}"}}"#),
        format!(r#"{{"settlement": "{id}", "actual": 0, "extra": 1}}"#),
        r#"{"settlement": 7, "actual": 0}"#.to_string(),
        format!(r#"["{id}", 0]"#),
        format!("{},", vec![id.as_str(); 65].join(",")),
    ];
    for body in &bodies {
        let (status, json) = settle(&fg, body);
        assert_eq!(status, 400, "{body}: {json}");
        assert!(
            json["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{body}"
        );
    }
    let reserved = fg.check(
        r#"{"attributes": {"user": "bob", "endpoint": "chat"}, "hits": 1, "reserve": "yes"}"#,
    );
    assert_eq!(reserved.status, 400);
    assert_eq!(fg.http("GET", "/v1/settle", None).status, 405);
    let policies = fg.http("GET", "/v1/policies", None).json();
    assert_eq!(policies["policies"][0]["settle"], true);
    assert!(policies["policies"][1].get("settle").is_none());
    assert_eq!(tokens_left(&fg, "bob"), 9_000, "nothing changed");
    assert_eq!(tokens_left(&fg, "mallory"), 10_000);
    // The genuine id still settles.
    let (status, _) = settle(&fg, &format!(r#"{{"settlement": "{id}", "actual": 1000}}"#));
    assert_eq!(status, 200);
}

#[test]
fn cost_metrics_are_per_policy_only() {
    let fg = Floodgate::start(&config());
    let id = reserve(&fg, "carol-secret", 400)["settlement"]
        .as_str()
        .unwrap()
        .to_string();
    settle(&fg, &format!(r#"{{"settlement": "{id}", "actual": 100}}"#));
    let id = reserve(&fg, "carol-secret", 50)["settlement"]
        .as_str()
        .unwrap()
        .to_string();
    settle(&fg, &format!(r#"{{"settlement": "{id}", "actual": 80}}"#));
    let text = fg.http("GET", "/metrics", None).text();
    let value = |name: &str| -> f64 {
        let prefix = format!("{name}{{policy=\"tokens\"}} ");
        let line = text
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("{name} missing:\n{text}"));
        line[prefix.len()..].parse().unwrap()
    };
    assert_eq!(
        value("floodgate_cost_charged_total"),
        480.0,
        "400 + 50 + 30 overrun"
    );
    assert_eq!(value("floodgate_cost_refunded_total"), 300.0);
    assert_eq!(value("floodgate_cost_settled_total"), 180.0);
    assert!(text.contains("# HELP floodgate_cost_charged_total"));
    assert!(
        !text.contains("carol-secret"),
        "no attribute values in labels"
    );
}

#[tokio::test]
async fn reserve_then_settle_over_grpc() {
    let fg = Floodgate::start(&config());
    let mut client = RateLimiterClient::connect(fg.grpc_uri()).await.unwrap();
    let request = CheckRequest {
        attributes: [("user", "dana"), ("endpoint", "chat")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        hits: Some(700),
        reserve: true,
        ..CheckRequest::default()
    };
    let checked = client.check(request.clone()).await.unwrap().into_inner();
    assert!(checked.allowed);
    assert!(!checked.settlement.is_empty());
    assert!(!checked.lease.is_empty());
    let plain = client
        .check(CheckRequest {
            reserve: false,
            ..request
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(plain.settlement, "");
    let settle = |settlement: &str, actual| SettleRequest {
        settlement: settlement.to_string(),
        actual,
    };
    let done = client
        .settle(settle(&checked.settlement, 900))
        .await
        .unwrap()
        .into_inner();
    assert!(done.settled);
    assert_eq!((done.estimate, done.charged), (700, 200));
    let again = client
        .settle(settle(&checked.settlement, 1))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition, "{again:?}");
    let forged = checked
        .settlement
        .replacen("tokens:dana/", "tokens:eve/", 1);
    for (id, actual) in [
        (forged.as_str(), 0),
        ("nope", 0),
        ("", 0),
        (checked.settlement.as_str(), u64::MAX),
    ] {
        let e = client.settle(settle(id, actual)).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{id}: {e:?}");
    }
}
