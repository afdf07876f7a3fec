//! The generator's own HTTP/1.1 client against hand-written servers: a
//! server that closes the connection after each answer is reconnected to,
//! and one whose answers the client cannot frame (chunked) is a transport
//! error per check, not a hang.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use floodgate_bench::{run, Args, Report};

/// Serves every connection on a thread: reads each request (head and
/// `Content-Length` body) and writes `answer`; closes after one answer
/// when `close`. Counts the connections it accepts.
fn server(answer: &'static str, close: bool) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counted = accepted.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            counted.fetch_add(1, Ordering::Relaxed);
            std::thread::spawn(move || serve(stream, answer, close));
        }
    });
    (addr, accepted)
}

fn serve(stream: TcpStream, answer: &str, close: bool) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let mut length = 0;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        if writer.write_all(answer.as_bytes()).is_err() || close {
            return;
        }
    }
}

async fn bench(target: SocketAddr, checks: &str) -> Report {
    let target = target.to_string();
    let flags = [
        "--protocol",
        "http",
        "--target",
        &target,
        "-n",
        checks,
        "-c",
        "1",
        "-m",
        "2",
        "--timeout",
        "5s",
        "--duration",
        "30s",
    ];
    let args = <Args as clap::Parser>::try_parse_from(
        std::iter::once("floodgate-bench").chain(flags.iter().copied()),
    )
    .unwrap();
    run(&args.into_config().unwrap()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_closes_after_each_answer_is_reconnected_to() {
    let (addr, accepted) = server(
        "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\n{}",
        true,
    );
    let report = bench(addr, "50").await;
    assert_eq!(report.allowed, 50, "{}", report.to_json());
    assert_eq!(report.errors.transport, 0, "{}", report.to_json());
    assert!(accepted.load(Ordering::Relaxed) >= 49);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_read_across_checks_on_one_connection() {
    let (addr, accepted) = server(
        "HTTP/1.1 429 Too Many Requests\r\nContent-Length: 11\r\n\r\n{\"a\":\"b c\"}",
        false,
    );
    let report = bench(addr, "50").await;
    assert_eq!(report.denied, 50, "{}", report.to_json());
    assert_eq!(report.errors.transport, 0, "{}", report.to_json());
    // One connection per worker (`-m 2`), kept for every check.
    assert_eq!(accepted.load(Ordering::Relaxed), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_the_client_cannot_frame_is_a_transport_error() {
    let (addr, _) = server(
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        false,
    );
    let report = bench(addr, "4").await;
    assert_eq!(report.allowed, 0, "{}", report.to_json());
    assert!(report.errors.transport >= 1, "{}", report.to_json());
    let json = report.to_json().to_string();
    assert!(json.contains("chunked"), "{json}");
}
