//! SIGTERM while checks are flowing (docs/api.md): the listeners stop
//! accepting, requests already accepted — including one whose body is still
//! arriving — are answered in full, and the process exits 0 within
//! `shutdown_grace`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use floodgate_e2e::{Floodgate, FREE_PORTS};

const CONFIG: &str = "shutdown_grace = \"3s\"\n\n[[policy]]\nname = \"api\"\nkey = [\"user\"]\nlimit = 50\nwindow = \"1m\"\n";

/// What one raw HTTP exchange gave.
enum Exchange {
    /// A complete response: its status and its JSON body.
    Answered(u16, serde_json::Value),
    /// The connection was refused or closed with no byte of response.
    NoAnswer,
}

/// Sends `head` then `body` (in two writes, `pause` apart) on a fresh
/// connection and reads the whole response. Any partial or malformed
/// response panics: that would be a failed in-flight check.
fn exchange(addr: std::net::SocketAddr, body: &str, pause: Option<Duration>) -> Exchange {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return Exchange::NoAnswer;
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let head = format!(
        "POST /v1/check HTTP/1.1\r\nHost: floodgate\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let (first, rest) = body.split_at(body.len() / 2);
    if stream.write_all(head.as_bytes()).is_err() || stream.write_all(first.as_bytes()).is_err() {
        return Exchange::NoAnswer;
    }
    if let Some(pause) = pause {
        std::thread::sleep(pause);
    }
    let _ = stream.write_all(rest.as_bytes());
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    if raw.is_empty() {
        return Exchange::NoAnswer;
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, json) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("truncated response: {text:?}"));
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status: {text:?}"));
    let json: serde_json::Value =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("incomplete body ({e}): {text:?}"));
    Exchange::Answered(status, json)
}

#[test]
fn sigterm_under_load_drains_in_flight_checks_and_exits_0() {
    let mut floodgate = Floodgate::start(&FREE_PORTS.replace(
        "grpc = \"127.0.0.1:0\"\n",
        &format!("grpc = \"127.0.0.1:0\"\n{CONFIG}"),
    ));
    let addr = floodgate.http;
    let signalled = AtomicBool::new(false);
    let answered = AtomicUsize::new(0);
    let unanswered_after_signal = AtomicUsize::new(0);
    let body = |user: usize| format!(r#"{{"attributes": {{"user": "u{user}"}}}}"#);

    let slow = std::thread::scope(|scope| {
        // A request accepted before SIGTERM whose body is still arriving
        // after it.
        let slow = scope.spawn(|| exchange(addr, &body(999), Some(Duration::from_millis(800))));
        for worker in 0..6 {
            let (signalled, answered, unanswered) =
                (&signalled, &answered, &unanswered_after_signal);
            scope.spawn(move || {
                let started = Instant::now();
                for i in 0..20_000 {
                    if started.elapsed() > Duration::from_secs(8) {
                        break;
                    }
                    let was_signalled = signalled.load(Ordering::SeqCst);
                    match exchange(addr, &body(worker * 100 + i % 100), None) {
                        Exchange::Answered(status, json) => {
                            assert!(status == 200 || status == 429, "{status} {json}");
                            assert_eq!(json["allowed"], status == 200, "{json}");
                            answered.fetch_add(1, Ordering::SeqCst);
                        }
                        Exchange::NoAnswer => {
                            // Only once SIGTERM was sent: a connection the
                            // server never accepted.
                            assert!(
                                signalled.load(Ordering::SeqCst) || was_signalled,
                                "no answer before SIGTERM"
                            );
                            unanswered.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_millis(400));
        signalled.store(true, Ordering::SeqCst);
        floodgate.signal("TERM");
        slow.join().unwrap()
    });
    match slow {
        Exchange::Answered(status, json) => {
            assert_eq!(status, 200, "{json}");
            assert_eq!(json["policy"], "api");
        }
        Exchange::NoAnswer => panic!("the in-flight request was dropped"),
    }
    let code = floodgate.wait_exit(Duration::from_secs(6));
    assert_eq!(code, Some(0), "log:\n{}", floodgate.log.lock().unwrap());
    assert!(
        TcpStream::connect(addr).is_err(),
        "still accepting after exit"
    );
    eprintln!(
        "answered {} checks; {} clients found the listener closed after SIGTERM",
        answered.load(Ordering::SeqCst),
        unanswered_after_signal.load(Ordering::SeqCst)
    );
    assert!(answered.load(Ordering::SeqCst) > 50);
}
