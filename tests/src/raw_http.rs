//! Raw HTTP/1.1 over `std::net` for the hostile-client tests: what a
//! misbehaving client does byte by byte, and a listener config to do it to.

use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

/// Long enough that nothing closes by accident while a test watches; a
/// socket still open after it counts as never closed.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A config with `server_extra` in `[server]` and, given an upstream, a
/// proxy to it with `proxy_extra` settings.
pub fn config(server_extra: &str, proxy: Option<(SocketAddr, &str)>) -> String {
    let proxy = proxy.map_or(String::new(), |(up, extra)| {
        format!("proxy = {{ listen = \"127.0.0.1:0\", upstream = \"http://{up}\"{extra} }}\n")
    });
    format!(
        "[server]\nhttp = \"127.0.0.1:0\"\ngrpc = \"127.0.0.1:0\"\n{proxy}{server_extra}\n\
         [[policy]]\nname = \"per-ip\"\nkey = [\"ip\"]\nlimit = 100000\nwindow = \"1m\"\n"
    )
}

/// Whether the server closes `stream` within [`PATIENCE`] (EOF or reset),
/// reading and discarding whatever it sends first.
pub fn closed_by_server(stream: &mut TcpStream) -> bool {
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// Reads one HTTP/1.1 response with a Content-Length body off `stream`.
pub fn read_response(stream: &mut TcpStream) -> String {
    let head = read_response_head(stream);
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).unwrap();
    head
}

/// Reads a response head only.
pub fn read_response_head(stream: &mut TcpStream) -> String {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        assert_eq!(
            stream.read(&mut byte).unwrap(),
            1,
            "connection closed early"
        );
        raw.push(byte[0]);
    }
    String::from_utf8_lossy(&raw).to_ascii_lowercase()
}

/// Reads a request head off `stream` ("" if it closes first).
pub fn read_request_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).unwrap_or(0) == 0 {
            return String::new();
        }
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// A scripted upstream on a free loopback port: each connection it accepts
/// is handed to `serve` on a thread of its own.
pub fn upstream(serve: impl Fn(TcpStream) + Copy + Send + 'static) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || serve(stream));
        }
    });
    addr
}
