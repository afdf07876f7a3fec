//! Proxy mode settles token budgets by itself: an OpenAI-style scripted
//! upstream answers JSON and server-sent events carrying `usage`, or a
//! cost header; the proxy reserves the estimate (`max_tokens` from the
//! request, or the configured number), charges exactly the reported cost,
//! and the client gets the upstream's bytes unchanged and as they come.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use floodgate_e2e::raw_http::{read_request_head, upstream};
use floodgate_e2e::{http_request, Floodgate, FREE_PORTS};

const JSON: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"The answer is \"total_tokens\": 7"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1200,"completion_tokens":634,"total_tokens":1834,"prompt_tokens_details":{"cached_tokens":0}}}"#;
const NO_USAGE: &str = r#"{"id":"chatcmpl-2","choices":[{"index":0,"message":{"content":"hi"}}]}"#;
const SSE: [&str; 4] = [
    "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}],\"usage\":null}\n\n",
    "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo \\\"total_tokens\\\": 9\"}}],\"usage\":null}\n\n",
    "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":19,\"completion_tokens\":23,\"total_tokens\":42}}\n\n",
    "data: [DONE]\n\n",
];

/// Stands for a compressed body: whatever it says, it is not readable JSON.
const GZIPPED: &str = "\u{1f}\u{8b}(compressed bytes)";

/// Holds the SSE stream after its first event until the test has read it.
static GATE: AtomicBool = AtomicBool::new(false);

/// The scripted upstream: `/tool` answers with `x-cost: 77`; the chat
/// endpoint answers an opaque compressed body when asked for gzip (or
/// told `always_gzip`), else SSE when asked to stream, else JSON (without
/// `usage` when the request says `no_usage`).
fn openai(mut stream: TcpStream) {
    loop {
        let head = read_request_head(&mut stream);
        if head.is_empty() {
            return;
        }
        let length = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse::<usize>().unwrap())
            })
            .unwrap_or(0);
        let mut body = vec![0; length];
        stream.read_exact(&mut body).unwrap();
        let body = String::from_utf8_lossy(&body);
        if head.starts_with("GET /tool") {
            let _ =
                stream.write_all(b"HTTP/1.1 200 OK\r\nx-cost: 77\r\ncontent-length: 2\r\n\r\nok");
        } else if body.contains("always_gzip") || head.to_ascii_lowercase().contains("gzip") {
            // Compressed, when asked for (or always), streamed or not: the
            // usage is not in the bytes as they pass.
            let _ = stream.write_all(
                format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-encoding: gzip\r\ncontent-length: {}\r\n\r\n{GZIPPED}", GZIPPED.len()).as_bytes(),
            );
        } else if body.contains("\"stream\":true") {
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n");
            for (i, event) in SSE.iter().enumerate() {
                if i == 1 && !body.contains("ungated") {
                    let until = Instant::now() + Duration::from_secs(10);
                    while !GATE.load(Ordering::SeqCst) && Instant::now() < until {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
                let _ = stream.write_all(format!("{:x}\r\n{event}\r\n", event.len()).as_bytes());
                let _ = stream.flush();
            }
            let _ = stream.write_all(b"0\r\n\r\n");
        } else {
            let answer = if body.contains("no_usage") {
                NO_USAGE
            } else {
                JSON
            };
            let _ = stream.write_all(
                format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}", answer.len()).as_bytes(),
            );
        }
    }
}

fn start() -> (Floodgate, SocketAddr) {
    let addr = upstream(openai);
    let config = format!(
        r#"{FREE_PORTS}proxy = {{ listen = "127.0.0.1:0", upstream = "http://{addr}" }}

[[endpoint]]
name = "chat"
path = "/v1/chat/completions"
methods = ["POST"]
cost = {{ usage = "total_tokens", estimate = 1000, estimate_from = "max_tokens", max_request_body = 4096 }}

[[endpoint]]
name = "tool"
path = "/tool"
cost = {{ header = "x-cost", estimate = 50 }}

[[policy]]
name = "tokens"
match = {{ endpoint = ["chat", "tool"] }}
key = ["user"]
limit = 100000
window = "1h"
algorithm = "fixed_window"
settle = true
"#
    );
    let fg = Floodgate::start(&config);
    let proxy = fg.proxy.expect("the proxy listens");
    (fg, proxy)
}

/// The user's tokens left, once it has settled to `expected` (a settle
/// runs just after the response ends); then checked again a moment later,
/// so a second charge would show.
fn settles_to(fg: &Floodgate, user: &str, expected: u64) {
    let body = format!(r#"{{"attributes": {{"user": "{user}", "endpoint": "chat"}}, "hits": 0}}"#);
    let left = || fg.check(&body).json()["remaining"].as_u64().unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while left() != expected && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(left(), expected, "{user}");
}

fn chat(proxy: SocketAddr, user: &str, body: &str) -> floodgate_e2e::HttpResponse {
    http_request(
        proxy,
        "POST",
        "/v1/chat/completions",
        &[("x-user-id", user), ("content-type", "application/json")],
        Some(body.as_bytes()),
    )
}

#[test]
fn a_json_answer_is_charged_its_usage_and_passes_unchanged() {
    let (fg, proxy) = start();
    let r = chat(
        proxy,
        "u1",
        r#"{"model":"m","max_tokens":300,"messages":[]}"#,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, JSON.as_bytes(), "byte for byte");
    settles_to(&fg, "u1", 100_000 - 1_834);
    // No usage in the answer: the estimate (max_tokens) stays charged.
    let r = chat(
        proxy,
        "u2",
        r#"{"model":"m","max_tokens":5000,"no_usage":1}"#,
    );
    assert_eq!(r.body, NO_USAGE.as_bytes());
    settles_to(&fg, "u2", 100_000 - 5_000);
    // A body past max_request_body: the configured estimate.
    let big = format!(
        r#"{{"max_tokens":5000,"no_usage":1,"pad":"{}"}}"#,
        "x".repeat(5000)
    );
    let r = chat(proxy, "u3", &big);
    assert_eq!(r.status, 200);
    settles_to(&fg, "u3", 100_000 - 1_000);
    // An absurd max_tokens is capped, denied by the budget, and never
    // reaches the upstream; nothing is charged.
    let r = chat(proxy, "u4", r#"{"max_tokens":99999999999999999999}"#);
    assert_eq!(r.status, 200, "not an integer u64: the configured estimate");
    let r = chat(proxy, "u5", r#"{"max_tokens":999999999999}"#);
    assert_eq!(r.status, 429);
    assert!(r.header("retry-after").is_some());
    settles_to(&fg, "u5", 100_000);
}

/// A client asking for a compressed answer cannot hide its usage: the
/// proxy asks the upstream for `identity`. An upstream that compresses
/// anyway keeps the estimate, and the log says why.
#[test]
fn a_client_asking_for_compression_is_still_charged_its_usage() {
    let (fg, proxy) = start();
    let r = http_request(
        proxy,
        "POST",
        "/v1/chat/completions",
        &[
            ("x-user-id", "u1"),
            ("content-type", "application/json"),
            ("accept-encoding", "gzip, br"),
        ],
        Some(br#"{"model":"m","max_tokens":300}"#),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, JSON.as_bytes(), "sent uncompressed");
    settles_to(&fg, "u1", 100_000 - 1_834);
    // A stream too.
    let r = http_request(
        proxy,
        "POST",
        "/v1/chat/completions",
        &[("x-user-id", "u3"), ("accept-encoding", "gzip")],
        Some(br#"{"stream":true,"ungated":1,"max_tokens":300}"#),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    settles_to(&fg, "u3", 100_000 - 42);
    let r = chat(proxy, "u2", r#"{"max_tokens":300,"always_gzip":1}"#);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    settles_to(&fg, "u2", 100_000 - 300);
    let log = fg.log.lock().unwrap();
    assert!(log.contains("the upstream compressed a response"), "{log}");
}

#[test]
fn a_cost_header_is_charged() {
    let (fg, proxy) = start();
    let r = http_request(proxy, "GET", "/tool", &[("x-user-id", "t1")], None);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]));
    settles_to(&fg, "t1", 100_000 - 77);
}

#[test]
fn an_sse_stream_is_charged_its_usage_and_streams_byte_for_byte() {
    let (fg, proxy) = start();
    let body =
        r#"{"model":"m","stream":true,"stream_options":{"include_usage":true},"max_tokens":100}"#;
    let mut stream = TcpStream::connect(proxy).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nx-user-id: s1\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    // The first event reaches the client while the upstream still holds the
    // rest: nothing is buffered.
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&raw).contains("\"Hel\"") {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "closed before the first event");
        raw.extend_from_slice(&buf[..n]);
    }
    GATE.store(true, Ordering::SeqCst);
    stream.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    assert_eq!(
        dechunk(&raw[split + 4..]),
        SSE.concat().as_bytes(),
        "byte for byte"
    );
    settles_to(&fg, "s1", 100_000 - 42);
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..end]).unwrap().trim(), 16).unwrap();
        data = &data[end + 2..];
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
    out
}
