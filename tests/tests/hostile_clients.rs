//! Hostile clients that hold a listener's resources by being slow or
//! greedy rather than silent, against the real binary: a client that stops
//! reading (its socket full, or its HTTP/2 window shut) is cut after the
//! send timeout and its slot freed; a slow but moving upload is not taken
//! for a slow upstream; one address gets at most `max_connections_per_ip`;
//! a proxied client past its limit gets its connection closed.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use floodgate_e2e::raw_http::*;
use floodgate_e2e::{http_request, Floodgate, TextUpstream};

/// An upstream that accepts connections and never answers.
fn silent_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.extend(stream.ok());
        }
    });
    addr
}

/// An upstream whose `/big` is 32 MiB and anything else `ok`.
fn big_upstream() -> SocketAddr {
    upstream(|mut stream| {
        let head = read_request_head(&mut stream);
        if head.starts_with("GET /big") {
            let chunk = vec![b'x'; 1024 * 1024];
            let _ = stream
                .write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {BIG}\r\n\r\n").as_bytes());
            for _ in 0..BIG / chunk.len() {
                if stream.write_all(&chunk).is_err() {
                    return;
                }
            }
        } else {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    })
}

/// The size of [`big_upstream`]'s `/big`.
const BIG: usize = 32 * 1024 * 1024;

#[test]
fn a_client_that_stops_reading_is_cut_after_the_send_timeout() {
    let fg = Floodgate::start(&config(
        "send_timeout = \"1s\"\nmax_connections = 1\n",
        Some((big_upstream(), "")),
    ));
    let proxy = fg.proxy.unwrap();
    let mut stuck = TcpStream::connect(proxy).unwrap();
    stuck
        .write_all(format!("GET /big HTTP/1.1\r\nHost: {proxy}\r\n\r\n").as_bytes())
        .unwrap();
    // It reads nothing for a while; its slot is freed for the next client.
    thread::sleep(Duration::from_secs(3));
    let next = http_request(proxy, "GET", "/small", &[], None);
    assert_eq!(next.status, 200);
    assert_eq!(next.text(), "ok");
    // What it reads now ends early: the response was cut.
    stuck.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    loop {
        match stuck.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
    }
    assert!(total < BIG, "the whole response arrived ({total} bytes)");
}

#[tokio::test]
async fn an_http2_client_that_opens_no_window_is_cut_after_the_send_timeout() {
    let fg = Floodgate::start(&config("send_timeout = \"1s\"\n", None));
    // A client that lets the server send it no data at all, and answers
    // pings: the response waits on HTTP/2 flow control, not on the socket.
    let tcp = tokio::net::TcpStream::connect(fg.http).await.unwrap();
    let (client, connection) = h2::client::Builder::new()
        .initial_window_size(0)
        .handshake::<_, bytes::Bytes>(tcp)
        .await
        .unwrap();
    let connection = tokio::spawn(connection);
    let request = http::Request::get(format!("http://{}/metrics", fg.http))
        .body(())
        .unwrap();
    let mut client = client.ready().await.unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    let response = response.await.unwrap();
    assert_eq!(response.status(), 200);
    // The client keeps its handle and the response body open, reading
    // nothing: only the server can end the connection.
    let body = response.into_body();
    let closed = tokio::time::timeout(PATIENCE, connection).await;
    assert!(
        closed.is_ok(),
        "the connection of a client that reads nothing stayed open"
    );
    drop((client, body));
}

/// An upstream that reads a request and its `Content-Length` body, then
/// answers with the number of body bytes it got.
fn counting_upstream() -> SocketAddr {
    upstream(|mut stream| {
        let head = read_request_head(&mut stream).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        let mut body = vec![0u8; length];
        if stream.read_exact(&mut body).is_err() {
            return;
        }
        let answer = length.to_string();
        let _ = stream.write_all(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            )
            .as_bytes(),
        );
    })
}

#[test]
fn the_response_timeout_counts_from_the_end_of_a_slow_upload() {
    let fg = Floodgate::start(&config(
        "",
        Some((counting_upstream(), ", response_timeout = \"1s\"")),
    ));
    let proxy = fg.proxy.unwrap();
    // A 3 s upload that keeps moving: the upstream answers right after it.
    let mut stream = TcpStream::connect(proxy).unwrap();
    stream
        .write_all(
            format!("POST /upload HTTP/1.1\r\nHost: {proxy}\r\nContent-Length: 10\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
    for _ in 0..10 {
        thread::sleep(Duration::from_millis(300));
        stream.write_all(b"x").unwrap();
    }
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("\r\n\r\n10"), "{answer}");
    // An upstream slow to answer a finished request still gets 504.
    let fg = Floodgate::start(&config(
        "",
        Some((silent_upstream(), ", response_timeout = \"1s\"")),
    ));
    let response = http_request(fg.proxy.unwrap(), "GET", "/slow", &[], None);
    assert_eq!(response.status, 504, "{}", response.text());
}

/// Sends one `Connection: close` GET for `/healthz` to `addr` and returns
/// whatever comes back (empty when the connection is refused).
fn try_healthz(addr: SocketAddr) -> String {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return String::new();
    };
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let _ = stream.write_all(request.as_bytes());
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn one_client_address_gets_at_most_max_connections_per_ip() {
    let fg = Floodgate::start(&config("max_connections_per_ip = 2\n", None));
    // Two idle connections from 127.0.0.1 take its two places...
    let first = TcpStream::connect(fg.http).unwrap();
    let _second = TcpStream::connect(fg.http).unwrap();
    // ...so a third from the same address is closed unanswered...
    let refused = try_healthz(fg.http);
    assert_eq!(refused, "", "served past max_connections_per_ip");
    // ...until one of them closes.
    drop(first);
    let deadline = Instant::now() + PATIENCE;
    let mut answer = try_healthz(fg.http);
    while !answer.starts_with("HTTP/1.1 200") && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
        answer = try_healthz(fg.http);
    }
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[test]
fn a_proxied_client_past_its_limit_gets_its_connection_closed() {
    let upstream = TextUpstream::start("app");
    let fg = Floodgate::start(&format!(
        "[server]\nhttp = \"127.0.0.1:0\"\ngrpc = \"127.0.0.1:0\"\n\
         proxy = {{ listen = \"127.0.0.1:0\", upstream = \"http://{}\" }}\n\
         [[policy]]\nname = \"per-ip\"\nkey = [\"ip\"]\nlimit = 1\nwindow = \"1m\"\n",
        upstream.addr
    ));
    let proxy = fg.proxy.unwrap();
    let mut stream = TcpStream::connect(proxy).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let request = format!("GET /a HTTP/1.1\r\nHost: {proxy}\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    assert!(read_response(&mut stream).starts_with("http/1.1 200"));
    stream.write_all(request.as_bytes()).unwrap();
    let denied = read_response(&mut stream);
    assert!(denied.starts_with("http/1.1 429"), "{denied}");
    assert!(denied.contains("connection: close"), "{denied}");
    assert!(closed_by_server(&mut stream), "kept open after a 429");
}
