//! `/v1/check`, `/v1/release`, `/v1/policies`, health and bad input over
//! real HTTP against the real binary.

use floodgate_e2e::{http_request, Floodgate, FREE_PORTS};

fn default_config() -> String {
    let shipped = std::fs::read_to_string(floodgate_e2e::repo_root().join("config/floodgate.toml"))
        .expect("config/floodgate.toml");
    // The shipped file with its listeners moved to free ports.
    shipped
        .replace("http = \"127.0.0.1:9720\"", "http = \"127.0.0.1:0\"")
        .replace("grpc = \"127.0.0.1:9721\"", "grpc = \"127.0.0.1:0\"")
}

#[test]
fn six_hundred_ai_checks_give_exactly_500_allowed() {
    let fg = Floodgate::start(&default_config());
    let body = r#"{"attributes": {"user": "u1", "endpoint": "ai"}}"#;
    let mut allowed = 0;
    let mut last = None;
    for _ in 0..600 {
        let r = fg.check(body);
        match r.status {
            200 => allowed += 1,
            429 => last = Some(r),
            other => panic!("unexpected status {other}: {}", r.text()),
        }
    }
    assert_eq!(allowed, 500);
    let denied = last.expect("a denial");
    let retry: u64 = denied.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "retry-after {retry}");
    assert_eq!(
        denied.header("ratelimit-policy"),
        Some("\"ai-per-user\";q=500;w=60")
    );
    assert!(denied
        .header("ratelimit")
        .unwrap()
        .starts_with("\"ai-per-user\";r=0;t="));
    let json = denied.json();
    assert_eq!(json["allowed"], false);
    assert_eq!(json["policy"], "ai-per-user");
    assert_eq!(json["limit"], 500);
    assert_eq!(json["remaining"], 0);
    assert!(json["retry_after_ms"].as_u64().unwrap() > 0);
    assert_eq!(json["statuses"][0]["source"], "local");
    // Another user is untouched.
    let other = fg.check(r#"{"attributes": {"user": "u2", "endpoint": "ai"}}"#);
    assert_eq!(other.status, 200);
    assert_eq!(other.json()["remaining"], 499);
}

#[test]
fn unmatched_checks_are_allowed_and_peeks_charge_nothing() {
    let fg = Floodgate::start(&default_config());
    let r = fg.check(r#"{"attributes": {"user": "u1", "endpoint": "static"}}"#);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["policy"], "");
    assert!(r.header("ratelimit").is_none());
    let peek = r#"{"attributes": {"ip": "10.0.0.1", "endpoint": "auth"}, "hits": 0}"#;
    for _ in 0..3 {
        let r = fg.check(peek);
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["remaining"], 150);
    }
    let costly = fg.check(r#"{"attributes": {"ip": "10.0.0.1", "endpoint": "auth"}, "hits": 100}"#);
    assert_eq!(costly.json()["remaining"], 50);
    let too_costly =
        fg.check(r#"{"attributes": {"ip": "10.0.0.1", "endpoint": "auth"}, "hits": 51}"#);
    assert_eq!(too_costly.status, 429);
    assert_eq!(too_costly.json()["remaining"], 50);
}

const CONCURRENCY: &str = r#"
[[policy]]
name = "llm-inflight"
match = { endpoint = "ai" }
key = ["user"]
limit = 2
algorithm = "concurrency"
lease_timeout = "30s"
"#;

#[test]
fn leases_hold_slots_until_released() {
    let fg = Floodgate::start(&format!("{FREE_PORTS}{CONCURRENCY}"));
    let body = r#"{"attributes": {"user": "u1", "endpoint": "ai"}}"#;
    let first = fg.check(body);
    assert_eq!(first.status, 200);
    let lease = first.json()["lease"].as_str().unwrap().to_string();
    assert_eq!(fg.check(body).status, 200);
    assert_eq!(fg.check(body).status, 429);
    let released = fg.http(
        "POST",
        "/v1/release",
        Some(&format!(r#"{{"lease": "{lease}"}}"#)),
    );
    assert_eq!(released.status, 204);
    assert_eq!(fg.check(body).status, 200);
    assert_eq!(fg.check(body).status, 429);
    let bad = fg.http("POST", "/v1/release", Some(r#"{"lease": "nope"}"#));
    assert_eq!(bad.status, 400);
    assert!(bad.json()["error"].as_str().unwrap().contains("lease"));
}

#[test]
fn bad_input_gets_a_clear_error_and_counts_nothing() {
    let fg = Floodgate::start(&format!(
        "{FREE_PORTS}\n[[policy]]\nname = \"p\"\nkey = [\"user\"]\nlimit = 1\nwindow = \"1m\"\n"
    ));
    let cases: &[(&str, &str)] = &[
        ("{not json", "invalid JSON"),
        (r#"{"attributes": {"user": 5}}"#, "invalid type"),
        (r#"{"hits": 1}"#, "missing field `attributes`"),
        (
            r#"{"attributes": {"user": "u1"}, "hits": -1}"#,
            "invalid value",
        ),
        (
            r#"{"attributes": {"user": "u1"}, "extra": 1}"#,
            "unknown field",
        ),
        (
            r#"{"attributes": {"user": "a\u0001b"}}"#,
            "control character",
        ),
        (
            r#"{"attributes": {"user": "u1"}, "hits": 1000000000000}"#,
            "too large",
        ),
        ("[]", "expected a JSON object"),
        ("", "expected a JSON object"),
        (
            r#"{"attributes": {"user": "u2", "endpoint": "x", "user": "u1"}}"#,
            "attribute \"user\" is given more than once",
        ),
    ];
    for (body, reason) in cases {
        let r = fg.check(body);
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        let error = r.json()["error"].as_str().unwrap().to_string();
        assert!(error.contains(reason), "{body}: {error}");
    }
    let long = format!(r#"{{"attributes": {{"user": "{}"}}}}"#, "x".repeat(257));
    let r = fg.check(&long);
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("257 bytes"));
    let huge = format!(r#"{{"attributes": {{"user": "{}"}}}}"#, "x".repeat(70_000));
    assert_eq!(fg.check(&huge).status, 413);
    // Bytes that are not UTF-8, in a string and outside one.
    for body in [
        &b"{\"attributes\": {\"user\": \"u1\xff\"}}"[..],
        &b"{\xfe}"[..],
    ] {
        let r = http_request(fg.http, "POST", "/v1/check", &[], Some(body));
        assert_eq!(r.status, 400, "{}", r.text());
        assert!(
            r.text().contains("invalid JSON body: not UTF-8"),
            "{}",
            r.text()
        );
    }
    // Nothing above was counted: the single allowed hit is still there.
    assert_eq!(fg.check(r#"{"attributes": {"user": "u1"}}"#).status, 200);
    assert_eq!(fg.check(r#"{"attributes": {"user": "u1"}}"#).status, 429);
    // Wrong method and unknown route.
    let r = fg.http("GET", "/v1/check", None);
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
    assert_eq!(fg.http("GET", "/nope", None).status, 404);
}

#[test]
fn a_body_sent_in_pieces_is_read_whole() {
    use std::io::{Read, Write};
    let fg = Floodgate::start(FREE_PORTS);
    let json = br#"{"attributes": {"user": "pieces", "endpoint": "ai"}, "hits": 2}"#;
    for chunked in [false, true] {
        let mut stream = std::net::TcpStream::connect(fg.http).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        let framing = if chunked {
            "Transfer-Encoding: chunked".to_string()
        } else {
            format!("Content-Length: {}", json.len())
        };
        let head =
            format!("POST /v1/check HTTP/1.1\r\nHost: x\r\n{framing}\r\nConnection: close\r\n\r\n");
        stream.write_all(head.as_bytes()).unwrap();
        // Three writes far enough apart to arrive as three reads.
        for piece in json.chunks(json.len() / 3 + 1) {
            std::thread::sleep(std::time::Duration::from_millis(50));
            if chunked {
                stream
                    .write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                    .unwrap();
                stream.write_all(piece).unwrap();
                stream.write_all(b"\r\n").unwrap();
            } else {
                stream.write_all(piece).unwrap();
            }
        }
        if chunked {
            stream.write_all(b"0\r\n\r\n").unwrap();
        }
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        let body = &response[response.find("\r\n\r\n").unwrap() + 4..];
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["allowed"], true, "{body}");
    }
}

#[test]
fn chunked_bodies_over_the_cap_are_refused() {
    let fg = Floodgate::start(FREE_PORTS);
    let chunk = "x".repeat(16 * 1024);
    let mut body = String::new();
    for _ in 0..5 {
        body.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    body.push_str("0\r\n\r\n");
    let r = http_request(
        fg.http,
        "POST",
        "/v1/check",
        &[("Transfer-Encoding", "chunked")],
        Some(body.as_bytes()),
    );
    assert_eq!(r.status, 413);
}

#[test]
fn health_readiness_policies_and_metrics() {
    let fg = Floodgate::start(&default_config());
    assert_eq!(fg.http("GET", "/healthz", None).status, 200);
    let ready = fg.http("GET", "/readyz", None);
    assert_eq!(ready.status, 200);
    let ready = ready.json();
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["store"], "local");
    // The shipped default: three per-class limits and two per-address
    // backstops.
    assert_eq!(ready["policies"], 5);
    let policies = fg.http("GET", "/v1/policies", None).json();
    let first = &policies["policies"][0];
    assert_eq!(first["name"], "ai-per-user");
    assert_eq!(first["limit"], 500);
    assert_eq!(first["window_ms"], 60_000);
    assert_eq!(first["algorithm"], "sliding_window");
    // The user, or the client address when there is no user.
    assert_eq!(first["key"][0], "user|ip");
    assert_eq!(first["match"]["endpoint"], "ai");
    assert_eq!(first["mode"], "enforce");
    fg.check(r#"{"attributes": {"user": "u1", "endpoint": "ai"}}"#);
    let metrics = fg.http("GET", "/metrics", None);
    assert_eq!(metrics.status, 200);
    let text = metrics.text();
    assert!(
        text.contains(
            r#"floodgate_checks_total{policy="ai-per-user",decision="allowed",source="local"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains("floodgate_check_duration_seconds_bucket"));
    assert!(!text.contains("u1"), "a user value leaked into a label");
}

#[test]
fn legacy_headers_when_configured() {
    let fg = Floodgate::start(
        "[server]\nhttp = \"127.0.0.1:0\"\ngrpc = \"127.0.0.1:0\"\nheaders = \"legacy\"\n\n[[policy]]\nname = \"p\"\nkey = [\"user\"]\nlimit = 5\nwindow = \"1m\"\n",
    );
    let r = fg.check(r#"{"attributes": {"user": "u1"}}"#);
    assert_eq!(r.header("x-ratelimit-limit"), Some("5"));
    assert_eq!(r.header("x-ratelimit-remaining"), Some("4"));
    assert!(
        r.header("x-ratelimit-reset")
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 1_700_000_000
    );
    assert!(r.header("ratelimit").is_none());
}

#[test]
fn sigterm_exits_zero() {
    let mut fg = Floodgate::start(FREE_PORTS);
    fg.signal("TERM");
    assert_eq!(fg.wait_exit(std::time::Duration::from_secs(15)), Some(0));
}

/// The signal handlers are in place before the listening line: a SIGTERM
/// sent the moment floodgate says it listens drains it (exit 0), never
/// kills it.
#[test]
fn sigterm_right_after_the_listening_line_always_drains() {
    for _ in 0..10 {
        let mut fg = Floodgate::start(FREE_PORTS);
        fg.signal("TERM");
        assert_eq!(fg.wait_exit(std::time::Duration::from_secs(15)), Some(0));
    }
}

#[test]
fn the_server_answers_on_the_worker_threads_it_is_given() {
    let config = |workers: &str| {
        format!(
            "[server]\nhttp = \"127.0.0.1:0\"\ngrpc = \"127.0.0.1:0\"\n{workers}\n\n\
             [[policy]]\nname = \"p\"\nkey = [\"user\"]\nlimit = 2\nwindow = \"1m\"\n"
        )
    };
    // Unset: one per CPU, unless the environment says otherwise.
    let default = std::env::var("TOKIO_WORKER_THREADS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    for (setting, workers) in [("workers = 1", 1), ("workers = 3", 3), ("", default)] {
        let fg = Floodgate::start(&config(setting));
        // The listening line reaches the log just after start returns.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let listening = loop {
            let log = fg.log.lock().unwrap().clone();
            if log.contains("floodgate listening") || std::time::Instant::now() > deadline {
                break log;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        let field = format!("workers={workers}");
        assert!(
            listening.split_whitespace().any(|word| word == field),
            "{setting:?}: {listening}"
        );
        let body = r#"{"attributes": {"user": "u"}}"#;
        let statuses: Vec<u16> = (0..3).map(|_| fg.check(body).status).collect();
        assert_eq!(statuses, [200, 200, 429], "{setting:?}");
    }
}

#[test]
fn a_worker_count_out_of_range_is_refused_before_anything_starts() {
    for (workers, message) in [
        ("0", "workers must be between 1 and 1024, not 0"),
        ("1025", "workers must be between 1 and 1024, not 1025"),
        ("\"two\"", "workers"),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("floodgate.toml");
        std::fs::write(
            &path,
            format!("[server]\nhttp = \"127.0.0.1:0\"\nworkers = {workers}\n"),
        )
        .expect("config");
        let (code, _, stderr) =
            floodgate_e2e::run_cli(&["serve", "--config", path.to_str().expect("utf-8 path")]);
        assert_eq!(code, 1, "workers = {workers}: {stderr}");
        assert!(stderr.contains(message), "workers = {workers}: {stderr}");
        assert!(
            stderr.contains("floodgate.toml:3:"),
            "the line is named: {stderr}"
        );
    }
}
