//! Hostile clients against the real binary's listeners: idle and half-sent
//! connections are closed after the header-read timeout while a
//! well-behaved client is served, kept-alive HTTP/1 and idle HTTP/2
//! connections do not idle forever (slow and greedy clients:
//! hostile_clients.rs),
//! HTTP/2 stream and gRPC connection caps hold, gRPC refuses
//! undecodable and oversized messages as the caller's fault, and the proxy
//! tunnels only the upgrades it is told to, each holding its connection
//! slot until it closes idle. Trickled request bodies, gRPC calls that
//! never send their message (hundreds on one connection, each at its own
//! limit) and stalled upstream bodies are cut; a request head with more
//! headers than `max_headers` is refused; an absurd `max_connections` is a
//! config error.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use floodgate_e2e::raw_http::*;
use floodgate_e2e::{http_request, Floodgate, TextUpstream};
use tonic::Code;

/// 50 connections that send nothing and 50 that send a request line and
/// one header but never finish the head.
fn hostile_connections(addr: SocketAddr) -> Vec<TcpStream> {
    let mut out = Vec::new();
    for i in 0..100 {
        let mut stream = TcpStream::connect(addr).expect("connect");
        if i % 2 == 1 {
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nX-Slow: 1\r\n")
                .unwrap();
        }
        out.push(stream);
    }
    out
}

#[test]
fn idle_and_half_sent_connections_are_closed_while_a_client_is_served() {
    let upstream = TextUpstream::start("app");
    let fg = Floodgate::start(&config(
        "header_read_timeout = \"1s\"\nmax_connections = 110\n",
        Some((upstream.addr, "")),
    ));
    let proxy = fg.proxy.expect("proxy address");
    for addr in [fg.http, proxy] {
        let mut hostile = hostile_connections(addr);
        // A well-behaved client is served all along.
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(1500) {
            let response = http_request(addr, "GET", "/healthz", &[], None);
            assert_eq!(response.status, 200, "{addr}");
            thread::sleep(Duration::from_millis(100));
        }
        for (i, stream) in hostile.iter_mut().enumerate() {
            assert!(
                closed_by_server(stream),
                "hostile connection {i} to {addr} is still open"
            );
        }
        // Their slots are free again: 100 more fit beside a client.
        let again = hostile_connections(addr);
        assert_eq!(http_request(addr, "GET", "/healthz", &[], None).status, 200);
        drop(again);
    }
}

#[test]
fn a_request_with_more_headers_than_max_headers_is_refused() {
    // The default cap (100) and a configured one.
    for (extra, cap) in [("", 100), ("max_headers = 20\n", 20)] {
        let fg = Floodgate::start(&config(extra, None));
        for (count, status) in [(cap, "200"), (cap + 1, "431")] {
            let mut request = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n", fg.http);
            for i in 1..count {
                request.push_str(&format!("X-Header-{i}: v\r\n"));
            }
            request.push_str("\r\n");
            let mut stream = TcpStream::connect(fg.http).unwrap();
            stream.set_read_timeout(Some(PATIENCE)).unwrap();
            stream.write_all(request.as_bytes()).unwrap();
            let head = read_response_head(&mut stream);
            assert!(
                head.starts_with(&format!("http/1.1 {status}")),
                "{count} headers, {extra:?}: {head}"
            );
        }
    }
}

#[test]
fn an_idle_kept_alive_connection_is_closed_after_the_timeout() {
    let fg = Floodgate::start(&config("header_read_timeout = \"1s\"\n", None));
    let mut stream = TcpStream::connect(fg.http).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", fg.http);
    // Kept alive: a second request on the same connection is served.
    for _ in 0..2 {
        stream.write_all(request.as_bytes()).unwrap();
        assert!(read_response(&mut stream).starts_with("http/1.1 200"));
        thread::sleep(Duration::from_millis(200));
    }
    // Then it idles, and the server closes it.
    assert!(
        closed_by_server(&mut stream),
        "the idle connection stayed open"
    );
}

#[test]
fn a_request_head_is_timed_from_its_first_bytes_and_from_the_previous_response() {
    let fg = Floodgate::start(&config("header_read_timeout = \"2s\"\n", None));
    let mut stream = TcpStream::connect(fg.http).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    // A head trickled in three pieces, all within the timeout, is served;
    // so is a second one on the kept-alive connection.
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", fg.http);
    for _ in 0..2 {
        for piece in request.as_bytes().chunks(request.len() / 3 + 1) {
            stream.write_all(piece).unwrap();
            thread::sleep(Duration::from_millis(300));
        }
        assert!(read_response(&mut stream).starts_with("http/1.1 200"));
    }
    // Half a head after a response: closed once the timeout has passed
    // since that response, not held open for the idle timeout (60 s).
    stream.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
    let started = Instant::now();
    assert!(
        closed_by_server(&mut stream),
        "the half-sent head stayed open"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "closed after {:?}, before the timeout",
        started.elapsed()
    );
}

/// An upstream that holds each `/slow` request for 5 s, counting how many
/// it holds at once (now, and at most), and answers anything else at once.
fn slow_upstream() -> (SocketAddr, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (holding, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (now, max) = (holding.clone(), most.clone());
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let (now, max) = (now.clone(), max.clone());
            thread::spawn(move || {
                let head = read_request_head(&mut stream);
                let slow = head.starts_with("GET /slow");
                if slow {
                    let held = now.fetch_add(1, Ordering::SeqCst) + 1;
                    max.fetch_max(held, Ordering::SeqCst);
                    thread::sleep(Duration::from_secs(5));
                    now.fetch_sub(1, Ordering::SeqCst);
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                );
            });
        }
    });
    (addr, holding, most)
}

/// Sends a GET for `path` on `client` and waits for its status.
async fn h2_get(
    client: &h2::client::SendRequest<bytes::Bytes>,
    addr: SocketAddr,
    path: &str,
) -> u16 {
    let request = http::Request::get(format!("http://{addr}{path}"))
        .body(())
        .unwrap();
    let mut ready = client.clone().ready().await.unwrap();
    let (response, _) = ready.send_request(request, true).unwrap();
    response.await.unwrap().status().as_u16()
}

#[tokio::test]
async fn many_http2_streams_on_one_connection_do_not_stop_other_clients() {
    let (upstream, holding, most) = slow_upstream();
    let fg = Floodgate::start(&config(
        "max_concurrent_streams = 4\n",
        Some((upstream, "")),
    ));
    let proxy = fg.proxy.unwrap();
    let tcp = tokio::net::TcpStream::connect(proxy).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    // One answered request: the server's settings have arrived by then.
    assert_eq!(h2_get(&client, proxy, "/fast").await, 200);
    assert_eq!(client.current_max_send_streams(), 4);
    // 50 slow requests on one connection: only 4 streams open at the
    // server (and upstream), the rest queued by the client behind them.
    let mut open = Vec::new();
    for _ in 0..50 {
        let request = http::Request::get(format!("http://{proxy}/slow"))
            .body(())
            .unwrap();
        let mut ready = client.clone().ready().await.unwrap();
        open.push(ready.send_request(request, true).unwrap());
    }
    let deadline = Instant::now() + PATIENCE;
    while holding.load(Ordering::SeqCst) < 4 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        holding.load(Ordering::SeqCst),
        4,
        "the capped streams never arrived"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        most.load(Ordering::SeqCst),
        4,
        "more streams than the cap were open"
    );
    // Other clients, HTTP/1 and HTTP/2, are served meanwhile.
    let h1 = tokio::task::spawn_blocking(move || http_request(proxy, "GET", "/fast", &[], None));
    assert_eq!(h1.await.unwrap().status, 200);
    let tcp = tokio::net::TcpStream::connect(proxy).await.unwrap();
    let (other, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    assert_eq!(h2_get(&other, proxy, "/fast").await, 200);
    drop(open);
}

/// The client preface and an empty SETTINGS frame: an HTTP/2 connection
/// that then says nothing, not even acknowledging the server's frames.
const H2_HELLO: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

#[tokio::test]
async fn idle_http2_connections_are_closed_on_the_api_and_grpc() {
    let fg = Floodgate::start(&config("idle_timeout = \"1s\"\n", None));
    for addr in [fg.http, fg.grpc] {
        // A real client answers the server's pings, so only the idle
        // timeout can close its connection; one request first.
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (client, connection) = h2::client::handshake(tcp).await.unwrap();
        let connection = tokio::spawn(connection);
        if addr == fg.http {
            assert_eq!(h2_get(&client, addr, "/healthz").await, 200);
        }
        let closed = tokio::time::timeout(PATIENCE, connection).await;
        assert!(
            closed.is_ok(),
            "the idle HTTP/2 connection to {addr} stayed open"
        );
        // A raw one that acknowledges nothing is closed as well.
        let raw = tokio::task::spawn_blocking(move || {
            let mut stream = TcpStream::connect(addr).unwrap();
            stream.write_all(H2_HELLO).unwrap();
            closed_by_server(&mut stream)
        });
        assert!(
            raw.await.unwrap(),
            "the silent HTTP/2 connection to {addr} stayed open"
        );
    }
    // The listeners serve on.
    assert_eq!(fg.http("GET", "/healthz", None).status, 200);
    assert!(healthy(grpc_channel(&fg).await).await);
}

/// The HTTP/2 frame types a raw client that answers nothing reads from
/// `addr` within `within`, and whether the server closed the connection.
fn h2_frames_read(addr: SocketAddr, within: Duration) -> (Vec<u8>, bool) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(H2_HELLO).unwrap();
    let started = Instant::now();
    let mut types = Vec::new();
    while let Some(left) = within.checked_sub(started.elapsed()) {
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        let mut head = [0u8; 9];
        match stream.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(_) => return (types, true),
        }
        let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let mut payload = vec![0u8; len];
        if stream.read_exact(&mut payload).is_err() {
            return (types, true);
        }
        types.push(head[3]);
    }
    (types, false)
}

#[tokio::test]
async fn http2_connections_are_pinged_only_when_an_interval_is_set() {
    const PING: u8 = 6;
    // Off by default: a silent client is not pinged (the idle timeout,
    // 60 s, is what reclaims it).
    let fg = Floodgate::start(&config("", None));
    for addr in [fg.http, fg.grpc] {
        let (types, closed) =
            tokio::task::spawn_blocking(move || h2_frames_read(addr, Duration::from_millis(1500)))
                .await
                .unwrap();
        assert!(
            !types.contains(&PING) && !closed,
            "{addr}: {types:?} {closed}"
        );
    }
    // Set: pinged, and closed when the ping goes unanswered.
    let fg = Floodgate::start(&config(
        "http2_keepalive_interval = \"300ms\"\nhttp2_keepalive_timeout = \"200ms\"\n",
        None,
    ));
    for addr in [fg.http, fg.grpc] {
        let (types, closed) = tokio::task::spawn_blocking(move || h2_frames_read(addr, PATIENCE))
            .await
            .unwrap();
        assert!(
            types.contains(&PING) && closed,
            "{addr}: {types:?} {closed}"
        );
    }
}

async fn grpc_channel(fg: &Floodgate) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(fg.grpc_uri())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

async fn raw_call(
    channel: tonic::transport::Channel,
    path: &'static str,
    message: bytes::Bytes,
) -> Result<bytes::Bytes, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    grpc.unary::<_, bytes::Bytes, _>(
        tonic::Request::new(message),
        path.parse().unwrap(),
        floodgate_e2e::RawCodec,
    )
    .await
    .map(tonic::Response::into_inner)
}

const SERVICES: [&str; 3] = [
    "/floodgate.v1.RateLimiter/Check",
    "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit",
    "/envoy.service.auth.v3.Authorization/Check",
];

#[tokio::test]
async fn undecodable_protobuf_is_invalid_argument_on_every_service() {
    let fg = Floodgate::start(&config("", None));
    let channel = grpc_channel(&fg).await;
    let garbage: [&[u8]; 3] = [
        &[0x0a, 0x7f, 0x01], // a length past the end
        &[
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ], // a varint that never ends
        &[0x07],             // wire type 7
    ];
    for path in SERVICES {
        for bytes in garbage {
            let message = bytes::Bytes::from_static(bytes);
            let status = raw_call(channel.clone(), path, message).await.unwrap_err();
            assert_eq!(
                status.code(),
                Code::InvalidArgument,
                "{path} {bytes:?}: {status:?}"
            );
            assert!(status.message().contains("decode"), "{path}: {status:?}");
        }
    }
}

#[tokio::test]
async fn an_unknown_method_or_service_is_unimplemented() {
    let fg = Floodgate::start(&config("", None));
    let channel = grpc_channel(&fg).await;
    for path in [
        "/floodgate.v1.RateLimiter/Nope",
        "/envoy.service.ratelimit.v3.RateLimitService/Nope",
        "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit/",
        "/envoy.service.ratelimit.v3.RateLimitService/shouldratelimit",
        "/envoy.service.auth.v3.Authorization/Nope",
        "/no.such.Service/Check",
        // Re-spelled paths of a real method.
        "/floodgate.v1.RateLimiter/Check/",
        "/floodgate.v1.RateLimiter/Check/extra",
        "//floodgate.v1.RateLimiter/Check",
        "/FLOODGATE.v1.RateLimiter/Check",
        "/floodgate.v1.RateLimiter",
        "/floodgate.v1.RateLimiter/",
    ] {
        let status = raw_call(channel.clone(), path, bytes::Bytes::new())
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unimplemented, "{path}: {status:?}");
    }
    // The services still answer.
    let answered = raw_call(channel, SERVICES[1], bytes::Bytes::new()).await;
    assert_eq!(answered.unwrap_err().code(), Code::InvalidArgument);
}

#[tokio::test]
async fn an_oversized_grpc_message_is_refused() {
    let fg = Floodgate::start(&config("", None));
    let channel = grpc_channel(&fg).await;
    // Field 15, length-delimited, 70 KiB: valid protobuf that any message
    // skips as an unknown field — refused only for its size.
    let mut message = vec![0x7a, 0x80, 0xb0, 0x04];
    message.resize(message.len() + 70 * 1024, b'x');
    let message = bytes::Bytes::from(message);
    for path in SERVICES {
        let status = raw_call(channel.clone(), path, message.clone())
            .await
            .unwrap_err();
        assert!(
            matches!(status.code(), Code::OutOfRange | Code::ResourceExhausted),
            "{path}: {status:?}"
        );
        assert!(status.message().contains("too large"), "{path}: {status:?}");
    }
}

async fn healthy(channel: tonic::transport::Channel) -> bool {
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let request = tonic_health::pb::HealthCheckRequest {
        service: String::new(),
    };
    health.check(request).await.is_ok()
}

#[tokio::test]
async fn grpc_connections_past_the_cap_wait_while_existing_ones_work() {
    let fg = Floodgate::start(&config("max_connections = 2\n", None));
    let first = grpc_channel(&fg).await;
    let second = grpc_channel(&fg).await;
    assert!(healthy(first.clone()).await);
    assert!(healthy(second.clone()).await);
    // A third connection is not served while two are open...
    let third = grpc_channel(&fg).await;
    let waiting = tokio::spawn(healthy(third));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !waiting.is_finished(),
        "a third connection was served past the cap of 2"
    );
    assert!(healthy(first.clone()).await);
    assert!(healthy(second.clone()).await);
    // ...until one closes.
    drop(second);
    let served = tokio::time::timeout(PATIENCE, waiting).await;
    assert!(matches!(served, Ok(Ok(true))), "{served:?}");
    assert!(healthy(first).await);
}

/// An upstream that answers `Upgrade: websocket` with 101 and then echoes
/// bytes, and any other request with 200 and the `Upgrade` header it saw
/// (or "none") as the body.
fn upgrade_upstream() -> SocketAddr {
    upstream(|mut stream| {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if stream.read(&mut byte).unwrap_or(0) == 0 {
                return;
            }
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        let upgrade = head
            .lines()
            .find_map(|l| l.strip_prefix("upgrade:"))
            .map_or("none".to_string(), |v| v.trim().to_string());
        if upgrade == "websocket" {
            let _ = stream.write_all(
                b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
            );
            let mut reader = stream.try_clone().unwrap();
            let _ = std::io::copy(&mut reader, &mut stream);
        } else {
            let _ = stream.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{upgrade}",
                    upgrade.len()
                )
                .as_bytes(),
            );
        }
    })
}

#[test]
fn only_websocket_upgrades_are_tunnelled() {
    let fg = Floodgate::start(&config("", Some((upgrade_upstream(), ""))));
    let proxy = fg.proxy.unwrap();
    let headers = [("Connection", "Upgrade"), ("Upgrade", "h2c")];
    let response = http_request(proxy, "GET", "/", &headers, None);
    assert_eq!(response.status, 200);
    assert_eq!(
        response.text(),
        "none",
        "the h2c upgrade reached the upstream"
    );
}

#[test]
fn a_tunnel_keeps_its_connection_slot_until_it_closes_idle() {
    let fg = Floodgate::start(&config(
        "max_connections = 1\n",
        Some((upgrade_upstream(), ", tunnel_idle_timeout = \"10s\"")),
    ));
    let proxy = fg.proxy.unwrap();
    let mut ws = TcpStream::connect(proxy).unwrap();
    ws.set_read_timeout(Some(PATIENCE)).unwrap();
    ws.write_all(
        format!("GET /ws HTTP/1.1\r\nHost: {proxy}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    assert!(read_response(&mut ws).starts_with("http/1.1 101"));
    ws.write_all(b"ping").unwrap();
    let mut echo = [0u8; 4];
    ws.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"ping");
    // The tunnel holds the only slot: another client waits...
    let mut other = TcpStream::connect(proxy).unwrap();
    other
        .write_all(
            format!("GET /x HTTP/1.1\r\nHost: {proxy}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .unwrap();
    other
        .set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let mut buf = [0u8; 64];
    let early = other.read(&mut buf);
    assert!(
        matches!(&early, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "served while the tunnel held the only slot: {early:?}"
    );
    // ...until the idle tunnel is closed, then it is served.
    assert!(closed_by_server(&mut ws), "the idle tunnel stayed open");
    other.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut answer = Vec::new();
    let _ = other.read_to_end(&mut answer);
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

#[test]
fn a_trickled_request_body_is_cut_at_the_request_timeout() {
    let fg = Floodgate::start(&config("request_timeout = \"1s\"\n", None));
    let mut stream = TcpStream::connect(fg.http).unwrap();
    stream
        .write_all(b"POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"attri")
        .unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    // A complete request is answered as before.
    assert_eq!(fg.check(r#"{"attributes":{"ip":"10.0.0.1"}}"#).status, 200);
}

/// Opens a floodgate.v1 Check call on `client` that never sends its
/// message, asking for `grpc-timeout` when given; resolves to the call's
/// `grpc-status` and when it came.
async fn call_without_message(
    client: &h2::client::SendRequest<bytes::Bytes>,
    addr: SocketAddr,
    grpc_timeout: Option<&str>,
) -> tokio::task::JoinHandle<(String, Instant)> {
    let mut request = http::Request::post(format!("http://{addr}/floodgate.v1.RateLimiter/Check"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(timeout) = grpc_timeout {
        request = request.header("grpc-timeout", timeout);
    }
    let mut ready = client.clone().ready().await.unwrap();
    let (response, body) = ready
        .send_request(request.body(()).unwrap(), false)
        .unwrap();
    tokio::spawn(async move {
        let _open = body;
        let head = response.await.unwrap();
        let status = head
            .headers()
            .get("grpc-status")
            .map(|v| v.to_str().unwrap().to_owned());
        (status.unwrap_or_default(), Instant::now())
    })
}

#[tokio::test]
async fn a_grpc_call_that_never_sends_its_message_ends_at_its_time_limit() {
    let fg = Floodgate::start(&config("grpc_timeout = \"3s\"\n", None));
    let tcp = tokio::net::TcpStream::connect(fg.grpc).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let started = Instant::now();
    // The listener's limit first, then a shorter one the caller asks for:
    // the later call ends first, each at its own limit.
    let long = call_without_message(&client, fg.grpc, None).await;
    let short = call_without_message(&client, fg.grpc, Some("1S")).await;
    // Meanwhile a whole call on the same connection is answered at once.
    let check = floodgate_proto::floodgate::v1::CheckRequest {
        attributes: [("ip".to_string(), "10.0.0.1".to_string())].into(),
        ..Default::default()
    };
    let (request, frame) = floodgate_e2e::grpc_raw::check_call(fg.grpc, &check);
    let mut ready = client.clone().ready().await.unwrap();
    let (response, mut body) = ready.send_request(request, false).unwrap();
    body.send_data(frame, true).unwrap();
    let mut answer = response.await.unwrap().into_body();
    while let Some(data) = answer.data().await {
        data.unwrap();
    }
    let trailers = answer.trailers().await.unwrap().unwrap_or_default();
    assert_eq!(
        trailers.get("grpc-status").map(|v| v.to_str().unwrap()),
        Some("0")
    );
    assert!(
        !short.is_finished() && !long.is_finished(),
        "a silent call ended before the whole one was answered"
    );
    let ended = |call: tokio::task::JoinHandle<(String, Instant)>| async move {
        let ended = tokio::time::timeout(PATIENCE, call).await;
        ended.expect("the call never ended").unwrap()
    };
    let (short_status, short_at) = ended(short).await;
    let (long_status, long_at) = ended(long).await;
    // CANCELLED, as tonic answers a call past its deadline.
    assert_eq!((short_status.as_str(), long_status.as_str()), ("1", "1"));
    let (short_after, long_after) = (short_at - started, long_at - started);
    assert!(
        short_after >= Duration::from_secs(1) && short_after < Duration::from_millis(2_500),
        "the 1 s call ended after {short_after:?}"
    );
    assert!(
        long_after >= Duration::from_secs(3) && long_after < Duration::from_millis(4_500),
        "the 3 s call ended after {long_after:?}"
    );
}

#[tokio::test]
async fn hundreds_of_silent_grpc_calls_each_end_at_their_own_limit() {
    let fg = Floodgate::start(&config("", None));
    let tcp = tokio::net::TcpStream::connect(fg.grpc).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    // 250 calls that never send their message, each asking for a shorter
    // limit than the one before (2.5 s down to 1 s): each is the earliest
    // so far when it comes.
    let mut calls = Vec::new();
    for i in 0..250u64 {
        let limit = Duration::from_millis(2_500 - 6 * i);
        let timeout = format!("{}m", limit.as_millis());
        let asked = Instant::now();
        let call = call_without_message(&client, fg.grpc, Some(&timeout)).await;
        calls.push((limit, asked, call));
    }
    // Meanwhile the listener answers whole calls at once.
    let check = floodgate_proto::floodgate::v1::CheckRequest {
        attributes: [("ip".to_string(), "10.0.0.1".to_string())].into(),
        ..Default::default()
    };
    let mut grpc = floodgate_proto::floodgate::v1::rate_limiter_client::RateLimiterClient::new(
        grpc_channel(&fg).await,
    );
    assert!(grpc.check(check).await.unwrap().into_inner().allowed);
    assert!(
        calls.iter().all(|(_, _, call)| !call.is_finished()),
        "a silent call ended before the whole one was answered"
    );
    for (limit, asked, call) in calls {
        let ended = tokio::time::timeout(PATIENCE, call).await;
        let (status, at) = ended.expect("a call never ended").unwrap();
        let after = at - asked;
        assert_eq!(status, "1", "the {limit:?} call");
        assert!(
            after >= limit && after < limit + Duration::from_millis(1_500),
            "the {limit:?} call ended after {after:?}"
        );
    }
}

/// An upstream that sends its response head and 10 of 100 body bytes, then
/// nothing, keeping the connection open.
fn stalling_upstream() -> SocketAddr {
    upstream(|mut stream| {
        let mut buf = [0u8; 4096];
        let _ = stream.read(&mut buf);
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
        thread::sleep(Duration::from_secs(60));
    })
}

#[test]
fn a_stalled_upstream_body_is_cut_at_the_body_idle_timeout() {
    let fg = Floodgate::start(&config(
        "",
        Some((stalling_upstream(), ", body_idle_timeout = \"1s\"")),
    ));
    let proxy = fg.proxy.unwrap();
    let mut stream = TcpStream::connect(proxy).unwrap();
    stream
        .write_all(format!("GET /stream HTTP/1.1\r\nHost: {proxy}\r\n\r\n").as_bytes())
        .unwrap();
    let head = read_response_head(&mut stream);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        closed_by_server(&mut stream),
        "the stalled response stayed open"
    );
}

#[test]
fn max_connections_beyond_the_semaphore_maximum_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("floodgate.toml");
    // tokio's Semaphore::MAX_PERMITS + 1 on 64-bit targets.
    std::fs::write(&path, "[server]\nmax_connections = 2305843009213693952\n").unwrap();
    let (code, _, err) = floodgate_e2e::run_cli(&["check-config", path.to_str().unwrap()]);
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains("max_connections must be at most 1000000"),
        "{err}"
    );
    assert!(err.contains(":2:"), "positioned: {err}");
}
