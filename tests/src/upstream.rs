//! A scriptable HTTP/1.1 upstream for the reverse proxy tests, on plain
//! threads and sockets so that what reaches it is exactly what the proxy
//! sent: `/sse` streams chunks the test releases one by one, `/echo` sends
//! the request body back, anything else answers with the request's head,
//! and a WebSocket upgrade is answered 101 and then echoes raw bytes.
//! Connections are kept alive (the proxy pools them). Runs until the test
//! process ends.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The running upstream.
pub struct ScriptedUpstream {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Requests received.
    hits: Arc<AtomicUsize>,
    /// Lets the `/sse` stream send its next chunk (one send, one chunk).
    next_chunk: Sender<()>,
}

/// Chunks of each `/sse` stream; the first goes at once, each next one when
/// the test calls [`ScriptedUpstream::release_chunk`].
pub const SSE_CHUNKS: usize = 3;

impl ScriptedUpstream {
    /// Starts it on a free loopback port.
    pub fn start() -> ScriptedUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind upstream");
        let addr = listener.local_addr().expect("addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let (next_chunk, gate) = channel();
        let gate = Arc::new(Mutex::new(gate));
        let counter = hits.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (counter, gate) = (counter.clone(), gate.clone());
                std::thread::spawn(move || serve(stream, &counter, &gate));
            }
        });
        ScriptedUpstream {
            addr,
            hits,
            next_chunk,
        }
    }

    /// Requests received so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Lets the current `/sse` stream send its next chunk.
    pub fn release_chunk(&self) {
        let _ = self.next_chunk.send(());
    }
}

fn serve(stream: TcpStream, hits: &AtomicUsize, gate: &Mutex<Receiver<()>>) {
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    loop {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        hits.fetch_add(1, Ordering::SeqCst);
        let lower = head.to_ascii_lowercase();
        let length: usize = lower
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let path = head.split(' ').nth(1).unwrap_or("/").to_string();
        let sent = if lower.contains("\r\nupgrade: websocket") {
            let _ = writer.write_all(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: test\r\n\r\n",
            );
            // Echo raw bytes until the tunnel closes.
            let mut buf = [0u8; 4096];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if writer.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                }
            }
        } else if path.starts_with("/sse") {
            sse(&mut writer, gate)
        } else if path.starts_with("/echo") {
            respond(&mut writer, "application/octet-stream", &body)
        } else {
            respond(&mut writer, "text/plain", head.as_bytes())
        };
        if !sent {
            return;
        }
    }
}

fn respond(writer: &mut TcpStream, content_type: &str, body: &[u8]) -> bool {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n",
        body.len()
    );
    writer.write_all(head.as_bytes()).is_ok() && writer.write_all(body).is_ok()
}

/// A chunked event stream of [`SSE_CHUNKS`] events, each after the first
/// sent only when the test releases it (or after 10 s).
fn sse(writer: &mut TcpStream, gate: &Mutex<Receiver<()>>) -> bool {
    let head =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
    if writer.write_all(head.as_bytes()).is_err() {
        return false;
    }
    for i in 0..SSE_CHUNKS {
        if i > 0 {
            let _ = gate.lock().unwrap().recv_timeout(Duration::from_secs(10));
        }
        let event = format!("data: event {i}\n\n");
        let chunk = format!("{:x}\r\n{event}\r\n", event.len());
        if writer.write_all(chunk.as_bytes()).is_err() || writer.flush().is_err() {
            return false;
        }
    }
    writer.write_all(b"0\r\n\r\n").is_ok()
}

/// A tiny HTTP/1.1 upstream that answers every request with 200 and a fixed
/// text body, counting requests. Runs until the process ends.
pub struct TextUpstream {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Requests served.
    hits: Arc<std::sync::atomic::AtomicUsize>,
}

impl TextUpstream {
    /// Starts it on a free loopback port.
    pub fn start(body: &'static str) -> TextUpstream {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind upstream");
        let addr = listener.local_addr().expect("addr");
        let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = hits.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let counter = counter.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                    let mut line = String::new();
                    // Read the head; bodies are not expected.
                    while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                        if line == "\r\n" {
                            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            let response = format!(
                                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                                body.len()
                            );
                            if stream.write_all(response.as_bytes()).is_err() {
                                return;
                            }
                        }
                        line.clear();
                    }
                });
            }
        });
        TextUpstream { addr, hits }
    }

    /// Requests served so far.
    pub fn hits(&self) -> usize {
        self.hits.load(std::sync::atomic::Ordering::SeqCst)
    }
}
