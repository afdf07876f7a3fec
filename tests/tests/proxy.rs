//! Reverse proxy mode with the real binary in front of a scripted upstream:
//! limits, 429s that never reach the app, streaming without buffering,
//! byte-exact uploads, WebSocket tunnels, forwarded headers, concurrency
//! leases released when a stream ends or its client leaves, h2c clients,
//! and 502 when the upstream is down.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use floodgate_e2e::upstream::{ScriptedUpstream, SSE_CHUNKS};
use floodgate_e2e::{free_port, http_request, Floodgate, FREE_PORTS};

fn config(upstream: SocketAddr) -> String {
    config_with(upstream, "", "")
}

/// The proxy config with `server` lines added to `[server]` and `sections`
/// (a `[store]`, say) before the endpoints and policies.
fn config_with(upstream: SocketAddr, server: &str, sections: &str) -> String {
    format!(
        "{FREE_PORTS}{server}proxy = {{ listen = \"127.0.0.1:0\", upstream = \"http://{upstream}\" }}\n{sections}\n[[endpoint]]\nname = \"stream\"\npath = \"/sse*\"\n\n[[endpoint]]\nname = \"api\"\npath = \"/api/*\"\n\n[[policy]]\nname = \"api-per-user\"\nmatch = {{ endpoint = \"api\" }}\nkey = [\"user\"]\nlimit = 3\nwindow = \"366d\"\nalgorithm = \"fixed_window\"\n\n[[policy]]\nname = \"one-stream\"\nmatch = {{ endpoint = \"stream\" }}\nkey = []\nlimit = 1\nalgorithm = \"concurrency\"\n"
    )
}

fn start(upstream: &ScriptedUpstream) -> (Floodgate, SocketAddr) {
    let floodgate = Floodgate::start(&config(upstream.addr));
    let proxy = floodgate.proxy.expect("the proxy listens");
    (floodgate, proxy)
}

fn get(proxy: SocketAddr, path: &str, user: &str) -> floodgate_e2e::HttpResponse {
    http_request(proxy, "GET", path, &[("x-user-id", user)], None)
}

/// Opens `/sse` and reads the response head and the first event.
fn open_stream(proxy: SocketAddr) -> (BufReader<TcpStream>, String) {
    let mut stream = TcpStream::connect(proxy).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET /sse HTTP/1.1\r\nHost: app\r\n\r\n")
        .unwrap();
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        head.push_str(&line);
        if line == "\r\n" || line.is_empty() {
            break;
        }
    }
    (reader, head)
}

/// Reads chunked data until `needle` has arrived.
fn read_until(reader: &mut BufReader<TcpStream>, needle: &str) -> String {
    let mut seen = String::new();
    while !seen.contains(needle) {
        let mut line = String::new();
        let n = reader.read_line(&mut line).expect("stream data");
        assert!(n > 0, "stream ended before {needle:?}: {seen:?}");
        seen.push_str(&line);
    }
    seen
}

/// Opens `/sse` until it is admitted (the one-stream lease is free again),
/// within 5 s; each refusal lets the upstream send its next chunk, so an
/// abandoned stream's proxy finds its client gone. Drains the admitted one.
fn until_a_new_stream_is_admitted(proxy: SocketAddr, upstream: &ScriptedUpstream) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (mut next, head) = open_stream(proxy);
        if head.starts_with("HTTP/1.1 200") {
            read_until(&mut next, "data: event 0");
            for _ in 1..SSE_CHUNKS {
                upstream.release_chunk();
            }
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the lease was never released: {head}"
        );
        upstream.release_chunk();
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn limits_and_forwards_with_headers() {
    let upstream = ScriptedUpstream::start();
    let (_floodgate, proxy) = start(&upstream);
    for i in 0..3 {
        let r = http_request(
            proxy,
            "GET",
            "/api/items?page=2",
            &[("x-user-id", "u1"), ("x-forwarded-for", "203.0.113.9")],
            None,
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let seen = r.text().to_ascii_lowercase();
        assert!(seen.starts_with("get /api/items?page=2 http/1.1"), "{seen}");
        // The peer is appended to the chain (no proxy is trusted, but the
        // chain is forwarded as it came).
        assert!(
            seen.contains("x-forwarded-for: 203.0.113.9, 127.0.0.1"),
            "{seen}"
        );
        assert!(seen.contains("x-forwarded-proto: http"), "{seen}");
        assert!(seen.contains("x-forwarded-host:"), "{seen}");
        assert!(
            !seen.contains("connection: close"),
            "hop-by-hop header forwarded"
        );
        let ratelimit = r.header("ratelimit").unwrap();
        assert!(
            ratelimit.starts_with(&format!("\"api-per-user\";r={};t=", 2 - i)),
            "{ratelimit}"
        );
    }
    let hits = upstream.hits();
    let denied = get(proxy, "/api/items", "u1");
    assert_eq!(denied.status, 429, "{}", denied.text());
    assert!(denied.header("retry-after").is_some());
    assert!(denied
        .header("ratelimit-policy")
        .unwrap()
        .contains("api-per-user"));
    assert_eq!(denied.json()["allowed"], false);
    assert_eq!(denied.json()["policy"], "api-per-user");
    assert_eq!(upstream.hits(), hits, "a denied request reached the app");
    // Another user still gets through.
    assert_eq!(get(proxy, "/api/items", "u2").status, 200);
}

#[test]
fn streams_without_buffering_and_releases_the_lease_at_the_end() {
    let upstream = ScriptedUpstream::start();
    let (_floodgate, proxy) = start(&upstream);
    let (mut stream, head) = open_stream(proxy);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("text/event-stream"),
        "{head}"
    );
    // The first event arrives while the upstream is still holding the rest:
    // nothing is buffered until the end.
    read_until(&mut stream, "data: event 0");
    // One stream at a time: a second one is refused while this one runs.
    let second = get(proxy, "/sse", "x");
    assert_eq!(second.status, 429, "{}", second.text());
    for i in 1..SSE_CHUNKS {
        upstream.release_chunk();
        read_until(&mut stream, &format!("data: event {i}"));
    }
    read_until(&mut stream, "0\r\n");
    // The body ended: the lease is released, a new stream may start.
    until_a_new_stream_is_admitted(proxy, &upstream);
}

#[test]
fn a_client_that_leaves_mid_stream_frees_its_lease() {
    let upstream = ScriptedUpstream::start();
    let (_floodgate, proxy) = start(&upstream);
    let (mut stream, _) = open_stream(proxy);
    read_until(&mut stream, "data: event 0");
    drop(stream);
    // The proxy finds the client gone when it next has data for it.
    upstream.release_chunk();
    until_a_new_stream_is_admitted(proxy, &upstream);
}

#[test]
fn large_uploads_round_trip_byte_for_byte() {
    let upstream = ScriptedUpstream::start();
    let (_floodgate, proxy) = start(&upstream);
    let body: Vec<u8> = (0..5 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let r = http_request(proxy, "POST", "/echo", &[], Some(&body));
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), body.len());
    assert!(r.body == body, "the echoed body differs");
}

#[test]
fn websocket_upgrades_are_tunnelled() {
    let upstream = ScriptedUpstream::start();
    let (_floodgate, proxy) = start(&upstream);
    let mut ws = TcpStream::connect(proxy).unwrap();
    ws.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    ws.write_all(b"GET /chat HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").unwrap();
    let mut reader = BufReader::new(ws.try_clone().unwrap());
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    assert!(status.starts_with("HTTP/1.1 101"), "{status}");
    let mut head = String::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        head.push_str(&line.to_ascii_lowercase());
    }
    assert!(head.contains("upgrade: websocket"), "{head}");
    // A masked text frame "hello", then another: echoed byte for byte.
    for text in ["hello", "again"] {
        let mask = [1u8, 2, 3, 4];
        let mut frame = vec![0x81, 0x80 | text.len() as u8];
        frame.extend_from_slice(&mask);
        frame.extend(text.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        ws.write_all(&frame).unwrap();
        let mut back = vec![0u8; frame.len()];
        reader.read_exact(&mut back).unwrap();
        assert_eq!(back, frame);
    }
}

#[test]
fn http2_clients_are_served() {
    let upstream = ScriptedUpstream::start();
    let (_floodgate, proxy) = start(&upstream);
    let out = std::process::Command::new("curl")
        .args(["-s", "-i", "--http2-prior-knowledge", "-H", "x-user-id: h2"])
        .arg(format!("http://{proxy}/api/h2"))
        .output()
        .expect("curl is installed (scripts/test installs it)");
    let text = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(text.starts_with("http/2 200"), "{text}");
    assert!(
        text.contains("get /api/h2 http/1.1"),
        "forwarded as HTTP/1.1: {text}"
    );
    assert!(text.contains("ratelimit-policy:"), "{text}");
}

#[test]
fn upstream_down_is_a_quick_502() {
    let closed: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let floodgate = Floodgate::start(&config(closed));
    let proxy = floodgate.proxy.unwrap();
    let r = get(proxy, "/api/x", "u1");
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("cannot be reached"));
    let mut raw = String::new();
    let _ = TcpStream::connect(proxy)
        .and_then(|mut s| {
            s.write_all(b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
                .map(|_| s)
        })
        .and_then(|mut s| s.read_to_string(&mut raw));
    assert!(raw.starts_with("HTTP/1.1 502"), "{raw}");
}

#[test]
fn sigterm_releases_the_leases_of_streams_still_open() {
    let upstream = ScriptedUpstream::start();
    let redis = floodgate_e2e::RedisServer::start();
    let config = config_with(
        upstream.addr,
        "shutdown_grace = \"300ms\"\n",
        &format!(
            "[store]\nkind = \"redis\"\n[store.redis]\nurl = \"{}\"\nkey_prefix = \"px\"\ntimeout = \"500ms\"\n",
            redis.url()
        ),
    );
    let mut floodgate = Floodgate::start(&config);
    let proxy = floodgate.proxy.expect("the proxy listens");
    let (mut stream, head) = open_stream(proxy);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    read_until(&mut stream, "data: event 0");
    let keys = redis.cli(&["--scan", "--pattern", "px:*"]);
    let key = keys
        .lines()
        .find(|k| k.ends_with(":cc"))
        .unwrap_or_else(|| panic!("no lease key in {keys:?}"));
    assert_eq!(redis.cli(&["ZCARD", key]).trim(), "1", "one lease held");

    // The stream outlives the grace period: at shutdown its lease goes.
    floodgate.signal("TERM");
    assert_eq!(floodgate.wait_exit(Duration::from_secs(5)), Some(0));
    assert_eq!(
        redis.cli(&["ZCARD", key]).trim(),
        "0",
        "the lease was left to expire; log:\n{}",
        floodgate.log.lock().unwrap()
    );
    drop(stream);
}

#[test]
fn the_shipped_proxy_example_works_in_front_of_an_app() {
    let upstream = ScriptedUpstream::start();
    let example =
        std::fs::read_to_string(floodgate_e2e::repo_root().join("examples/proxy/floodgate.toml"))
            .unwrap();
    for needle in [
        "http = \"127.0.0.1:9720\"",
        "grpc = \"127.0.0.1:9721\"",
        "listen = \"0.0.0.0:8000\"",
        "upstream = \"http://127.0.0.1:3000\"",
    ] {
        assert!(example.contains(needle), "{needle}");
    }
    let local = example
        .replace("127.0.0.1:9720", "127.0.0.1:0")
        .replace("127.0.0.1:9721", "127.0.0.1:0")
        .replace("0.0.0.0:8000", "127.0.0.1:0")
        .replace("127.0.0.1:3000", &upstream.addr.to_string());
    let floodgate = Floodgate::start(&local);
    let proxy = floodgate.proxy.unwrap();
    // An AI call is checked against both AI policies and reaches the app.
    let r = http_request(
        proxy,
        "POST",
        "/api/chat/completions",
        &[("x-user-id", "u1")],
        Some(b"{\"prompt\": \"hi\"}"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text().starts_with("POST /api/chat/completions"),
        "{}",
        r.text()
    );
    assert_eq!(
        r.header("ratelimit-policy").unwrap(),
        "\"ai-streams-per-user\";q=4;w=60"
    );
    // Each finished request released its slot: more requests than the 4
    // slots pass one after another.
    for i in 0..6 {
        let r = http_request(
            proxy,
            "POST",
            "/api/chat/x",
            &[("x-user-id", "u1")],
            Some(b"{}"),
        );
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
    }
}

/// `OPTIONS *` names no resource to forward: a 400 saying so, before any
/// policy counts it, and the app never sees it.
#[test]
fn an_asterisk_form_request_is_refused_before_counting() {
    let upstream = ScriptedUpstream::start();
    let per_ip = "[[policy]]\nname = \"per-ip\"\nkey = [\"ip\"]\nlimit = 2\nwindow = \"1m\"\n";
    let fg = Floodgate::start(&config_with(upstream.addr, "", per_ip));
    let proxy = fg.proxy.expect("the proxy listens");
    for _ in 0..3 {
        let mut stream = TcpStream::connect(proxy).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
            .write_all(b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(answer.contains("asterisk-form"), "{answer}");
    }
    assert_eq!(upstream.hits(), 0);
    let statuses: Vec<u16> = (0..3)
        .map(|_| get(proxy, "/api/items", "u1").status)
        .collect();
    assert_eq!(statuses, [200, 200, 429], "the OPTIONS counted nothing");
}
