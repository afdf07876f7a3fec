//! Test harness for black-box tests: starts the real `floodgate` binary on
//! free loopback ports (port 0, read back from its startup log), talks to it
//! over real HTTP and gRPC, and stops it when dropped.
//!
//! The binary must be built first (`cargo test --workspace` does it;
//! `scripts/test` does it).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod raw_http;
pub mod redis_servers;
pub mod upstream;

pub use redis_servers::{free_port, wait_until, Cluster, RedisServer, SlotMigration, TestCa};

/// The `floodgate` binary next to the test executable's `deps/` folder.
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let bin = dir.join("floodgate");
    assert!(
        bin.exists(),
        "{} is missing: build it first with `cargo build --bin floodgate`",
        bin.display()
    );
    bin
}

/// A running `floodgate serve`.
pub struct Floodgate {
    /// The child process.
    child: Child,
    /// Where its HTTP listener is.
    pub http: SocketAddr,
    /// Where its gRPC listener is.
    pub grpc: SocketAddr,
    /// Where its reverse proxy listens, when `[server] proxy` is set.
    pub proxy: Option<SocketAddr>,
    /// Where its health listener is, when `[server] health` is set.
    pub health: Option<SocketAddr>,
    /// Everything it logged so far (stderr), for assertions and failures.
    pub log: Arc<Mutex<String>>,
    /// The config file (kept alive with the process).
    pub dir: tempfile::TempDir,
}

/// The `[server]` lines that put both listeners on free loopback ports.
pub const FREE_PORTS: &str = "[server]\nhttp = \"127.0.0.1:0\"\ngrpc = \"127.0.0.1:0\"\n";

impl Floodgate {
    /// Writes `config` to a temporary file and starts `floodgate serve` on
    /// it, with `extra` arguments. Panics if it does not come up within 20 s.
    pub fn start_with(config: &str, extra: &[&str]) -> Floodgate {
        Self::start_env(config, extra, &[])
    }

    /// [`Floodgate::start_with`] with extra environment variables.
    pub fn start_env(config: &str, extra: &[&str], env: &[(&str, &str)]) -> Floodgate {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("floodgate.toml");
        std::fs::write(&path, config).expect("write config");
        let mut child = Command::new(binary())
            .arg("serve")
            .arg("--config")
            .arg(&path)
            .args(extra)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn floodgate");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("floodgate listening") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(line.clone());
                    }
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let line = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("floodgate did not start; its log:\n{}", log.lock().unwrap());
            }
        };
        let field = |name: &str| -> SocketAddr {
            let start = line.find(&format!("{name}=")).expect("address in log") + name.len() + 1;
            let rest = &line[start..];
            let end = rest.find(' ').unwrap_or(rest.len());
            rest[..end].parse().expect("socket address")
        };
        let optional = |name: &str| -> Option<SocketAddr> {
            let key = format!(" {name}=");
            line.find(&key)
                .map(|start| &line[start + key.len()..])
                .and_then(|rest| rest.split(' ').next())
                .and_then(|addr| addr.parse().ok())
        };
        Floodgate {
            http: field("http"),
            grpc: field("grpc"),
            proxy: optional("proxy"),
            health: optional("health"),
            child,
            log,
            dir,
        }
    }

    /// Starts `floodgate serve` on `config` (which should use [`FREE_PORTS`]).
    pub fn start(config: &str) -> Floodgate {
        Self::start_with(config, &[])
    }

    /// The config file path.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("floodgate.toml")
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (`"TERM"`, `"HUP"`, …) to the process.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits up to `timeout` for the process to exit; its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// A plain HTTP/1.1 request to the HTTP listener.
    pub fn http(&self, method: &str, path: &str, body: Option<&str>) -> HttpResponse {
        http_request(self.http, method, path, &[], body.map(str::as_bytes))
    }

    /// `POST /v1/check` with a JSON body.
    pub fn check(&self, body: &str) -> HttpResponse {
        self.http("POST", "/v1/check", Some(body))
    }

    /// A gRPC endpoint URI.
    pub fn grpc_uri(&self) -> String {
        format!("http://{}", self.grpc)
    }
}

impl Drop for Floodgate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response read off the wire.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one HTTP/1.1 request (`Connection: close`) and reads the answer.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> HttpResponse {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("write head");
    if let Some(body) = body {
        // The server may answer (413) and close before reading it all.
        let _ = stream.write_all(body);
    }
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> HttpResponse {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    HttpResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&data[..line_end])
                .split(';')
                .next()
                .unwrap_or("0")
                .trim(),
            16,
        )
        .unwrap_or(0);
        data = &data[line_end + 2..];
        if size == 0 || data.len() < size {
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[(size + 2).min(data.len())..];
    }
    out
}

/// Runs `floodgate <args>` to completion: (exit code, stdout, stderr).
pub fn run_cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(binary())
        .args(args)
        .output()
        .expect("run floodgate");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The repository's root folder.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

/// A gRPC codec that sends and receives raw message bytes, to put
/// hand-built protobuf on the wire and read back exactly what came.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = bytes::Bytes;
    type Decode = bytes::Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }
    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = bytes::Bytes;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Self::Item,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), Self::Error> {
        use bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = bytes::Bytes;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Self::Item>, Self::Error> {
        use bytes::Buf;
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
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

/// Runs `command` (its output captured) to its end, killing it and failing
/// the test when it takes longer than `limit`: a stuck script fails the
/// suite instead of hanging it.
pub fn run_bounded(command: &mut Command, limit: Duration) -> std::process::Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the command");
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().expect("output")
}
